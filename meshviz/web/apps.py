from django.apps import AppConfig


class WebConfig(AppConfig):
    """The web shell: pages and health checks around the pure engine."""

    name = "meshviz.web"
    label = "web"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Bind @shared_task to meshviz's Celery app in every Django process (web, manage.py, tests),
        # without making `import meshviz` pull in Celery.
        from meshviz.celery import app  # noqa: F401
