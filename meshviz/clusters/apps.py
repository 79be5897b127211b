from django.apps import AppConfig


class ClustersConfig(AppConfig):
    """Live collection: cluster connections (kubeconfigs encrypted at rest), collection jobs run by Celery
    workers through the Kubernetes API, and watched pods re-collected on a schedule."""

    name = "meshviz.clusters"
    label = "clusters"
    default_auto_field = "django.db.models.BigAutoField"
