from django.apps import AppConfig


class ReplicatedAppConfig(AppConfig):
    name = "tests.replicated_app"
    label = "replicated_app"
    replicated = True
    default_auto_field = "django.db.models.BigAutoField"
