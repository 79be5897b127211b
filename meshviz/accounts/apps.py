from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "meshviz.accounts"
    label = "accounts"
    verbose_name = "accounts, teams and API keys"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI extension)
