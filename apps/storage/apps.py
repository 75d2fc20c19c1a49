import functools
import importlib
import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)

# Started when the p2p node starts: the jobs runner (backups and restores) and the
# maintenance worker (placing, audits, repair, retention, deposits).
_STARTERS = ("apps.storage.jobs:start", "apps.storage.worker:start")


# Modules resolved once: _call runs on every commit of every thread (import_module was 1.2 % of
# a one-row write). The function is still looked up each time, so a test may replace it.
_module = functools.cache(importlib.import_module)


def _call(path: str, *args: Any) -> None:
    module, _, name = path.partition(":")
    try:
        getattr(_module(module), name)(*args)
    except Exception:  # a receiver never fails the node or whoever wrote
        logger.exception("storage: %s failed", path)


def _on_node_started(sender: Any, **kwargs: Any) -> None:
    for path in _STARTERS:
        _call(path)


def _on_thread_added(sender: Any, thread: bytes, **kwargs: Any) -> None:
    # A holding thread this node joined as holder: check the terms, grant the quota.
    _call("apps.storage.hold:on_thread_added", thread)


def _on_ops_written(sender: Any, thread: bytes, **kwargs: Any) -> None:
    # Quota rows, holders and devices change: the worker looks again soon.
    _call("apps.storage.worker:on_ops_written", thread)


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
        from apps.core.threads.signals import node_started, ops_written, thread_added
        from apps.storage import policy, protocols

        policy_template_register(policy.SHAPE, policy.storage_policy)
        thread_app_register(policy.RULES_APP, policy.storage_spec, only_in=policy.SHAPE)
        policy_template_register(policy.HOLD_SHAPE, policy.hold_policy, member=policy.HOLDER)
        thread_app_register(policy.HOLD_APP, policy.hold_spec, only_in=policy.HOLD_SHAPE)
        node_started.connect(_on_node_started, dispatch_uid="storage-started")
        thread_added.connect(_on_thread_added, dispatch_uid="storage-added")
        ops_written.connect(_on_ops_written, dispatch_uid="storage-ops")
        protocols.install()
