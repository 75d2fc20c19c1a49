from django.apps import AppConfig
from django.conf import settings


class CadreConfig(AppConfig):
    """One person on several nodes: the control thread, device links, recovery and mirrors."""

    name = "apps.cadre"
    label = "cadre"
    replicated = True  # its replicated models live in the control thread
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.cadre import policy, protocols, worker
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.policy import policy_template_register
        from apps.core.threads.services import unlisted_register
        from apps.core.threads.signals import node_started, ops_written, thread_added

        policy_template_register(policy.SHAPE, policy.control_policy)
        thread_app_register(policy.RULES_APP, policy.cadre_spec, only_in=policy.SHAPE)
        unlisted_register(policy.SHAPE)
        node_started.connect(worker.on_node_started, dispatch_uid="cadre-worker")
        ops_written.connect(worker.on_ops_written, dispatch_uid="cadre-ops")
        thread_added.connect(worker.on_thread_added, dispatch_uid="cadre-added")
        worker.steps_install()
        protocols.install()
        if settings.SEREUS.mirror:
            # The p2p node reads and writes the mirror's ciphertext store, not thread databases.
            from apps.p2p import mirror_io

            mirror_io.install()
