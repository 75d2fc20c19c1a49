"""``manage.py runnode``: the one command that runs a node.

Migrates, creates the device key on first start, prints the one-time claim link while the node
has no owner, then serves the web UI with daphne and (in default mode) runs the p2p worker and
the background-task worker in the same process. Stops cleanly on SIGINT/SIGTERM. Refuses to run
beside another node on the same data dir, and exits non-zero when a port is taken.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse
from kombu.exceptions import OperationalError

import sereus_web
from apps.core import identity, services
from apps.core.datadir_lock import NODE, DataDirBusy, DataDirLock
from apps.core.listen_errors import ListenError
from apps.core.node_addresses import http_note, p2p_note
from apps.core.tasks import sessions_clear_expired
from sereus_web.config import HttpBind, parse_http, parse_p2p_listen


class Command(BaseCommand):
    help = (
        "Run the node: migrations, first-run setup, the web server, the p2p worker and "
        "background tasks. --data-dir PATH (or SEREUS_DATA_DIR) chooses the data directory."
    )
    requires_system_checks = ["__all__"]
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--http",
            help="Where the web UI listens, host:port (default: SEREUS_HTTP or 127.0.0.1:8000; "
            "port 0 picks a free port).",
        )
        parser.add_argument(
            "--p2p-listen",
            help="The p2p listen multiaddr (default: SEREUS_P2P_LISTEN or /ip4/0.0.0.0/tcp/4001).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see what a stuck
        # node is doing without stopping it.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        try:
            bind = parse_http(options["http"], name="--http") if options["http"] else None
            p2p_listen = parse_p2p_listen(options["p2p_listen"]) if options["p2p_listen"] else None
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        bind = bind or settings.SEREUS.http
        p2p_listen = p2p_listen or settings.SEREUS.p2p_listen
        data_dir = Path(settings.DATA_DIR)
        try:
            # Before anything writes: a second node on this data dir would act as the same one.
            # Held until the process ends.
            lock = DataDirLock.acquire(data_dir, NODE)
        except DataDirBusy as exc:
            raise CommandError(str(exc)) from exc
        if not settings.SEREUS.scale_out:
            lock.note(**p2p_note(p2p_listen, None))

        call_command("migrate", interactive=False, verbosity=0)
        if settings.STATIC_ROOT and not settings.WHITENOISE_USE_FINDERS:
            # Production serves fingerprinted copies: collect them (only changed files are copied).
            call_command("collectstatic", interactive=False, verbosity=0)
        try:
            device = identity.device_key_ensure(data_dir)
        except identity.KeyFileError as exc:
            raise CommandError(f"cannot load the device key: {exc}") from exc
        claim_token = services.claim_token_issue() if services.node_needs_claim() else None
        try:
            sessions_clear_expired.delay()
        except OperationalError as exc:  # scale-out with Redis down: serve anyway, say so
            self.stderr.write(f"Warning: cannot queue background tasks: {exc}")

        mode = "scale-out (Redis)" if settings.SEREUS.scale_out else "single process"
        self._out(f"Sereus node {sereus_web.__version__}")
        self._out(f"  peer id:  {device.peer_id}")
        self._out(f"  data dir: {data_dir}")
        self._out(f"  mode:     {mode}")
        self._out(f"  p2p:      {p2p_listen}")
        if settings.SEREUS.scale_out:
            self._out(
                "  The p2p worker and the task worker run as their own processes here:\n"
                "    python manage.py runworker sereus-p2p\n"
                "    celery -A sereus_web worker"
            )
        if not bind.is_loopback:
            self.stderr.write(
                f"Warning: the web UI listens on {bind.host}, reachable from other machines "
                "over plain HTTP. Put an HTTPS reverse proxy in front (see the README)."
            )

        def on_listening(host: str, port: int) -> None:
            lock.note(**http_note(host, port))
            base = f"http://{HttpBind(host=host, port=port).url_host()}:{port}"
            self._out(f"  web:      {base}/")
            if claim_token is not None:
                self._out(
                    "\n  This node has no owner yet. Open this one-time link to claim it:\n"
                    f"    {base}{reverse('core:claim')}?token={claim_token}\n"
                )
            self._out(f"Ready in {time.monotonic() - started:.2f}s. Stop with Ctrl-C.")

        from apps.core.runtime import NodeRuntime  # imports twisted: only when serving

        try:
            NodeRuntime(bind=bind, p2p_listen=p2p_listen, on_listening=on_listening).run()
        except (ListenError, DataDirBusy) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            lock.release()

    def _out(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
        sys.stdout.flush()
