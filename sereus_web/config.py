"""Node configuration read from the environment, validated once, with safe defaults.

Settings modules call :func:`config_from_env`; nothing else reads ``SEREUS_*`` variables, so every
knob is documented in one place (and in the README). A wrong value stops start-up with a message
that names the variable and says what is expected.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from sereus_web.files import secret_file_create, secret_file_read

DEFAULT_HTTP = "127.0.0.1:8000"
DEFAULT_P2P_LISTEN = "/ip4/0.0.0.0/tcp/4001"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class HttpBind:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def url_host(self) -> str:
        """The host part of a URL a person on this machine can open."""
        if self.host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    def endpoint(self) -> str:
        """Twisted endpoint description for daphne (colons in IPv6 hosts escaped)."""
        interface = self.host.replace(":", "\\:")
        return f"tcp:port={self.port}:interface={interface}"


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    http: HttpBind
    p2p_listen: str
    redis_url: str | None
    redis_prefix: str
    database_url: str | None
    domain: str | None
    extra_allowed_hosts: tuple[str, ...]
    debug: bool
    log_level: str
    relay: bool
    mdns: bool
    p2p_announce: tuple[str, ...] = ()
    p2p_relays: tuple[str, ...] = ()
    dht: bool = True
    sync_interval: float = 180.0
    max_attachment_bytes: int = 100 * 1024 * 1024
    lift_seconds: float = 60.0  # a lift this node referees: from its start to its deadline
    # A mirror: keeps the ciphertext of the threads of the parties that added it, never a key.
    mirror: bool = False
    # Storage: how often each holder's shares are checked, and what this node grants its own
    # party's backups (bytes).
    storage_check_seconds: float = 3600.0
    storage_quota: int = 50 * 1024**3

    @property
    def scale_out(self) -> bool:
        """Redis channel layer, Celery on Redis, p2p worker in its own process."""
        return self.redis_url is not None

    @property
    def allowed_hosts(self) -> list[str]:
        hosts = list(LOCAL_HOSTS)
        if self.domain:
            hosts.append(self.domain)
        hosts.extend(h for h in self.extra_allowed_hosts if h not in hosts)
        return hosts


def parse_http(value: str, *, name: str = "SEREUS_HTTP") -> HttpBind:
    """Parse ``host:port`` (``[v6]:port`` for IPv6; a bare port binds 127.0.0.1)."""
    text = value.strip()
    if text.isdigit():
        host, port_text = "127.0.0.1", text
    elif text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ImproperlyConfigured(f"{name}={value!r}: expected [ipv6]:port, e.g. [::1]:8000")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ImproperlyConfigured(f"{name}={value!r}: expected host:port, e.g. 127.0.0.1:8000")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ImproperlyConfigured(f"{name}={value!r}: the port must be a number from 0 to 65535")
    return HttpBind(host=host, port=int(port_text))


def parse_bool(value: str | None, *, name: str, default: bool) -> bool:
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected one of on/off, true/false, 1/0")


def parse_p2p_listen(value: str) -> str:
    # Only the TCP transport is supported (DESIGN §8: no QUIC); the full multiaddr is checked by
    # the p2p host, this catches the common typos early with a readable message.
    parts = value.strip().split("/")
    if len(parts) != 5 or parts[0] or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        raise ImproperlyConfigured(
            f"SEREUS_P2P_LISTEN={value!r}: expected a TCP multiaddr like /ip4/0.0.0.0/tcp/4001"
        )
    if not parts[4].isdigit() or int(parts[4]) > 65535:
        raise ImproperlyConfigured(f"SEREUS_P2P_LISTEN={value!r}: the port must be 0-65535")
    return value.strip()


def parse_multiaddrs(value: str | None, *, name: str, peer: bool = False) -> tuple[str, ...]:
    """A comma-separated list of TCP multiaddrs (with ``/p2p/<peer id>`` when ``peer``)."""
    out = []
    for item in (value or "").split(","):
        text = item.strip()
        if not text:
            continue
        parts = text.split("/")
        if len(parts) < 5 or parts[0] or parts[1] not in ("ip4", "ip6", "dns", "dns4", "dns6"):
            raise ImproperlyConfigured(
                f"{name}: {text!r} is not a multiaddr like /ip4/1.2.3.4/tcp/4001"
            )
        if parts[3] != "tcp" or not parts[4].isdigit() or not 0 < int(parts[4]) <= 65535:
            raise ImproperlyConfigured(f"{name}: {text!r} needs a TCP port (/tcp/4001)")
        if peer != (len(parts) == 7 and parts[5] == "p2p" and bool(parts[6])):
            wanted = "ends with /p2p/<peer id>" if peer else "has no /p2p/ part"
            raise ImproperlyConfigured(f"{name}: {text!r}: each address {wanted}")
        out.append(text)
    return tuple(out)


def parse_seconds(value: str | None, *, name: str, default: float, low: float) -> float:
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not low <= seconds <= 86400:
        raise ImproperlyConfigured(f"{name}={value!r}: expected seconds from {low:g} to 86400")
    return seconds


def parse_megabytes(value: str | None, *, name: str, default: int) -> int:
    """A size in whole MiB (1 to 4096), as bytes."""
    if value is None or value.strip() == "":
        return default * 1024 * 1024
    try:
        megabytes = int(value)
    except ValueError:
        megabytes = 0
    if not 1 <= megabytes <= 4096:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number of MiB, 1 to 4096")
    return megabytes * 1024 * 1024


def parse_gigabytes(value: str | None, *, name: str, default: int) -> int:
    """A size in whole GiB (1 to 1 000 000), as bytes."""
    if value is None or value.strip() == "":
        return default * 1024**3
    try:
        gigabytes = int(value)
    except ValueError:
        gigabytes = 0
    if not 1 <= gigabytes <= 1_000_000:
        raise ImproperlyConfigured(
            f"{name}={value!r}: expected a whole number of GiB, 1 to 1000000"
        )
    return gigabytes * 1024**3


def parse_hosts(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


def config_from_env(environ: Mapping[str, str] | None = None) -> NodeConfig:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("SEREUS_DATA_DIR") or ".sereus").expanduser().resolve()
    domain = (env.get("SEREUS_DOMAIN") or "").strip().lower() or None
    if domain and ("/" in domain or ":" in domain):
        raise ImproperlyConfigured(
            f"SEREUS_DOMAIN={domain!r}: give the bare domain name, e.g. node.example.org"
        )
    log_level = (env.get("SEREUS_LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ImproperlyConfigured(
            f"SEREUS_LOG_LEVEL={log_level!r}: expected DEBUG, INFO, WARNING or ERROR"
        )
    redis_url = env.get("SEREUS_REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"SEREUS_REDIS_URL={redis_url!r}: expected redis://host:port/db or rediss://..."
        )
    return NodeConfig(
        data_dir=data_dir,
        http=parse_http(env.get("SEREUS_HTTP") or DEFAULT_HTTP),
        p2p_listen=parse_p2p_listen(env.get("SEREUS_P2P_LISTEN") or DEFAULT_P2P_LISTEN),
        redis_url=redis_url,
        redis_prefix=env.get("SEREUS_REDIS_PREFIX") or "sereus",
        database_url=env.get("DATABASE_URL") or None,
        domain=domain,
        extra_allowed_hosts=parse_hosts(env.get("SEREUS_ALLOWED_HOSTS")),
        debug=parse_bool(env.get("SEREUS_DEBUG"), name="SEREUS_DEBUG", default=False),
        log_level=log_level,
        relay=parse_bool(env.get("SEREUS_RELAY"), name="SEREUS_RELAY", default=False),
        mdns=parse_bool(env.get("SEREUS_MDNS"), name="SEREUS_MDNS", default=False),
        p2p_announce=parse_multiaddrs(env.get("SEREUS_P2P_ANNOUNCE"), name="SEREUS_P2P_ANNOUNCE"),
        p2p_relays=parse_multiaddrs(
            env.get("SEREUS_P2P_RELAYS"), name="SEREUS_P2P_RELAYS", peer=True
        ),
        dht=parse_bool(env.get("SEREUS_DHT"), name="SEREUS_DHT", default=True),
        mirror=parse_bool(env.get("SEREUS_MIRROR"), name="SEREUS_MIRROR", default=False),
        sync_interval=parse_seconds(
            env.get("SEREUS_P2P_SYNC_INTERVAL"), name="SEREUS_P2P_SYNC_INTERVAL", default=180, low=1
        ),
        lift_seconds=parse_seconds(
            env.get("SEREUS_LIFT_SECONDS"), name="SEREUS_LIFT_SECONDS", default=60, low=5
        ),
        max_attachment_bytes=parse_megabytes(
            env.get("SEREUS_MAX_ATTACHMENT_MB"), name="SEREUS_MAX_ATTACHMENT_MB", default=100
        ),
        storage_check_seconds=parse_seconds(
            env.get("SEREUS_STORAGE_CHECK_SECONDS"),
            name="SEREUS_STORAGE_CHECK_SECONDS",
            default=3600,
            low=1,
        ),
        storage_quota=parse_gigabytes(
            env.get("SEREUS_STORAGE_QUOTA_GB"), name="SEREUS_STORAGE_QUOTA_GB", default=50
        ),
    )


def data_dir_prepare(data_dir: Path) -> Path:
    """Create the data directory (owner-only) if needed and refuse one others can write to."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = data_dir.stat().st_mode
    if mode & 0o022:
        raise ImproperlyConfigured(
            f"data directory {data_dir} is writable by other users (mode {oct(mode & 0o777)}); "
            "run: chmod 700 on it"
        )
    return data_dir


def secret_key_load(data_dir: Path) -> str:
    """Django's SECRET_KEY, generated into the data dir on first run (never in the repo)."""
    path = data_dir / "secret_key"
    if not path.exists():
        secret_file_create(path, secrets.token_urlsafe(50).encode())
    return secret_file_read(path).decode().strip()
