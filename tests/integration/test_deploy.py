"""Production settings: `check --deploy` clean; PostgreSQL as the node database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.nodes import manage

pytestmark = pytest.mark.slow


def test_production_settings_pass_check_deploy(tmp_path: Path):
    result = manage(
        tmp_path / "node",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        "--settings=sereus_web.settings.production",
        env={"SEREUS_DOMAIN": "node.example.org"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_need_a_domain(tmp_path: Path):
    result = manage(tmp_path / "node", "check", "--settings=sereus_web.settings.production")
    assert result.returncode != 0
    assert "SEREUS_DOMAIN" in result.stderr


def _postgres_available() -> bool:
    import psycopg

    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


@pytest.mark.skipif(not _postgres_available(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_node_database_on_postgresql(tmp_path: Path):
    import psycopg

    name = f"sereus_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}"}
        result = manage(tmp_path / "node", "node_token", env=env)
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        assert len(token) == 64
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            owners = conn.execute("SELECT count(*) FROM core_node WHERE owner_id IS NOT NULL")
            assert owners.fetchone()[0] == 1
            assert conn.execute("SELECT count(*) FROM knox_authtoken").fetchone()[0] == 1
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
