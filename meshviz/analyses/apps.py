from django.apps import AppConfig


class AnalysesConfig(AppConfig):
    """Uploaded evidence, its analysis (run by a Celery task) and the REST API over it."""

    name = "meshviz.analyses"
    label = "analyses"
    default_auto_field = "django.db.models.BigAutoField"
