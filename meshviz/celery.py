"""The Celery app (``celery -A meshviz worker``).

Configuration comes from Django settings prefixed ``CELERY_``. With ``CELERY_BROKER_URL`` empty,
settings turn on ``task_always_eager`` so tasks run in-process and no broker is needed.

Not imported by ``meshviz/__init__.py``: the engine must import without Celery or Django.
``meshviz.web.apps.WebConfig.ready`` imports it so ``shared_task`` binds to this app in Django processes.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshviz.settings")

app = Celery("meshviz")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
