from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Node"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.threads.naming import on_thread_added
        from apps.core.threads.signals import thread_added
        from sereus_web.db import connection_handler

        # This member's name goes into every thread this node creates or joins.
        thread_added.connect(on_thread_added, dispatch_uid="core-name-thread-added")
        # Every request asks which connections its thread holds: one look-up, not one per
        # thread database (sereus_web.db.connection_handler).
        connection_handler.install()
        if not settings.SEREUS.scale_out:
            from apps.core.background import queue_dirs_prepare

            # Any process may queue a task (a request, a command) before runnode's worker
            # starts: the filesystem broker needs its folders first.
            queue_dirs_prepare()
