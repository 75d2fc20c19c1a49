"""Channels' ``runworker``, with the p2p worker's lifecycle and a clean stop on SIGTERM."""

from channels.management.commands.runworker import Command as ChannelsRunworkerCommand

from apps.p2p.worker import P2PWorker


class Command(ChannelsRunworkerCommand):
    help = "Run a Channels worker; `runworker sereus-p2p` runs the node's p2p worker."
    worker_class = P2PWorker
