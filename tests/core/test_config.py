"""Environment configuration: defaults, parsing and clear errors for wrong values."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from sereus_web.cli import argv_apply_data_dir
from sereus_web.config import (
    HttpBind,
    config_from_env,
    data_dir_prepare,
    parse_http,
    parse_p2p_listen,
    secret_key_load,
)


def test_defaults_are_a_private_local_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    config = config_from_env({})
    assert config.data_dir == tmp_path / ".sereus"
    assert config.http == HttpBind("127.0.0.1", 8000)
    assert config.http.is_loopback
    assert config.p2p_listen == "/ip4/0.0.0.0/tcp/4001"
    assert not config.scale_out
    assert not config.debug
    assert not config.mdns
    assert config.allowed_hosts == ["localhost", "127.0.0.1", "[::1]"]


def test_domain_and_extra_hosts_join_allowed_hosts():
    config = config_from_env(
        {"SEREUS_DOMAIN": "Node.Example.org", "SEREUS_ALLOWED_HOSTS": "a.lan, b.lan,,"}
    )
    assert config.allowed_hosts == [
        "localhost",
        "127.0.0.1",
        "[::1]",
        "node.example.org",
        "a.lan",
        "b.lan",
    ]


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("127.0.0.1:8000", HttpBind("127.0.0.1", 8000)),
        ("0.0.0.0:80", HttpBind("0.0.0.0", 80)),
        ("[::1]:8443", HttpBind("::1", 8443)),
        ("9000", HttpBind("127.0.0.1", 9000)),
        ("localhost:0", HttpBind("localhost", 0)),
    ],
)
def test_parse_http(text: str, bind: HttpBind):
    assert parse_http(text) == bind


@pytest.mark.parametrize(
    "text", ["", "127.0.0.1", "host:port", ":80", "[::1]8000", "1.2.3.4:70000"]
)
def test_parse_http_refuses_with_the_variable_named(text: str):
    with pytest.raises(ImproperlyConfigured, match="SEREUS_HTTP"):
        parse_http(text)


def test_http_bind_helpers():
    assert HttpBind("0.0.0.0", 8000).url_host() == "127.0.0.1"
    assert not HttpBind("0.0.0.0", 8000).is_loopback
    assert HttpBind("::1", 8000).url_host() == "[::1]"
    assert HttpBind("::1", 8000).endpoint() == r"tcp:port=8000:interface=\:\:1"


@pytest.mark.parametrize(
    "text",
    ["/ip4/0.0.0.0/udp/4001/quic", "/ip4/1.2.3.4/tcp/x", "ip4/1.2.3.4/tcp/1", "/dns/x/tcp/1"],
)
def test_parse_p2p_listen_refuses_non_tcp_or_malformed(text: str):
    with pytest.raises(ImproperlyConfigured, match="SEREUS_P2P_LISTEN"):
        parse_p2p_listen(text)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SEREUS_DEBUG": "maybe"}, "SEREUS_DEBUG"),
        ({"SEREUS_REDIS_URL": "localhost:6379"}, "SEREUS_REDIS_URL"),
        ({"SEREUS_DOMAIN": "https://x.org/"}, "SEREUS_DOMAIN"),
        ({"SEREUS_LOG_LEVEL": "LOUD"}, "SEREUS_LOG_LEVEL"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], name: str):
    with pytest.raises(ImproperlyConfigured, match=name):
        config_from_env(env)


def test_redis_url_switches_to_scale_out():
    assert config_from_env({"SEREUS_REDIS_URL": "redis://127.0.0.1:6379/0"}).scale_out


def test_data_dir_is_created_owner_only_and_a_shared_one_is_refused(tmp_path: Path):
    created = data_dir_prepare(tmp_path / "new" / "data")
    assert stat.S_IMODE(created.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ImproperlyConfigured, match="writable by other users"):
        data_dir_prepare(shared)


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path):
    first = secret_key_load(tmp_path)
    assert len(first) >= 50
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert secret_key_load(tmp_path) == first


def test_data_dir_flag_is_taken_out_of_argv():
    env: dict[str, str] = {}
    assert argv_apply_data_dir(["manage.py", "runnode", "--data-dir", "/x"], env) == [
        "manage.py",
        "runnode",
    ]
    assert env["SEREUS_DATA_DIR"] == "/x"
    assert argv_apply_data_dir(["m", "--data-dir=/y", "check"], env) == ["m", "check"]
    assert env["SEREUS_DATA_DIR"] == "/y"


def test_the_attachment_limit_is_whole_mebibytes_within_bounds(tmp_path: Path):
    base = {"SEREUS_DATA_DIR": str(tmp_path)}
    assert config_from_env(base).max_attachment_bytes == 100 * 1024 * 1024
    limited = config_from_env({**base, "SEREUS_MAX_ATTACHMENT_MB": "5"})
    assert limited.max_attachment_bytes == 5 * 1024 * 1024
    for bad in ("0", "4097", "1.5", "lots", "-3"):
        with pytest.raises(ImproperlyConfigured, match="SEREUS_MAX_ATTACHMENT_MB"):
            config_from_env({**base, "SEREUS_MAX_ATTACHMENT_MB": bad})
