"""The Celery app (``celery -A meshviz worker``).

Configuration comes from Django settings prefixed ``CELERY_``. With ``CELERY_BROKER_URL`` empty,
settings turn on ``task_always_eager`` so tasks run in-process and no broker is needed.

Not imported by ``meshviz/__init__.py``: the engine must import without Celery or Django.
``meshviz.web.apps.WebConfig.ready`` imports it so ``shared_task`` binds to this app in Django processes.
"""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshviz.settings")

app = Celery("meshviz")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def limit_worker_memory(**_: object) -> None:
    """Cap each worker process's address space (MESHVIZ_WORKER_MEMORY_MB): a task needing more gets MemoryError."""
    import resource

    from django.conf import settings

    mb = int(getattr(settings, "MESHVIZ_WORKER_MEMORY_MB", 0) or 0)
    if mb > 0:
        limit = mb * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
