import importlib
import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)

# Started when the p2p node starts: the jobs runner (backups and restores) and the
# maintenance worker (placing, audits, repair, retention, deposits).
_STARTERS = ("apps.storage.jobs:start", "apps.storage.worker:start")


def _on_node_started(sender: Any, **kwargs: Any) -> None:
    for path in _STARTERS:
        module, _, name = path.partition(":")
        try:
            getattr(importlib.import_module(module), name)()
        except Exception:  # one part failing to start never stops the node
            logger.exception("storage: starting %s failed", path)


class StorageConfig(AppConfig):
    """Backups across the party's own nodes and friends' nodes: encrypted, deduplicated,
    k-of-n, restorable from the phrase (ADR 25)."""

    name = "apps.storage"
    label = "storage"
    replicated = True  # its replicated models live in the storage and holding threads
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.policy import policy_template_register
        from apps.core.threads.signals import node_started
        from apps.storage import policy, protocols

        policy_template_register(policy.SHAPE, policy.storage_policy)
        thread_app_register(policy.RULES_APP, policy.storage_spec, only_in=policy.SHAPE)
        policy_template_register(policy.HOLD_SHAPE, policy.hold_policy, member=policy.HOLDER)
        thread_app_register(policy.HOLD_APP, policy.hold_spec, only_in=policy.HOLD_SHAPE)
        node_started.connect(_on_node_started, dispatch_uid="storage-started")
        protocols.install()
