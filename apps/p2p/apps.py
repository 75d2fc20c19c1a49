from django.apps import AppConfig


class P2PConfig(AppConfig):
    name = "apps.p2p"
    label = "p2p"
    verbose_name = "Peer-to-peer"

    def ready(self) -> None:
        from apps.core.threads import services
        from apps.core.threads.signals import ops_written, thread_added
        from apps.p2p import client

        # The thread services reach the network through this (core does not import p2p).
        services.network = client.NetworkClient()
        ops_written.connect(client.on_ops_written, dispatch_uid="p2p-push")
        thread_added.connect(client.on_thread_added, dispatch_uid="p2p-thread-added")
