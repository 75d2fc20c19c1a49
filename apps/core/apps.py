from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Node"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if not settings.SEREUS.scale_out:
            from apps.core.background import queue_dirs_prepare

            # Any process may queue a task (a request, a command) before runnode's worker
            # starts: the filesystem broker needs its folders first.
            queue_dirs_prepare()
