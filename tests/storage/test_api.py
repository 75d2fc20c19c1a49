"""The storage API, in process: a folder backed up, listed, browsed a page at a time, a file
downloaded byte for byte and restored; every endpoint needs the owner's login; bad input, a path
that is not there and a restore into a folder that is not empty are answered with a status and
words; the schema lists every endpoint."""

from __future__ import annotations

import os
import uuid
from html import unescape
from pathlib import Path

import pytest
from django.test import Client

from apps.storage.models import Job
from tests.checklist.conftest import browser, owner_user  # noqa: F401 - fixtures
from tests.storage.test_pages import MB, seed_holders, seed_snapshot

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/storage/"


@pytest.fixture
def api(browser) -> Client:  # noqa: F811
    return browser


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, body or {}, content_type="application/json")


def put(api: Client, url: str, body: dict):
    return api.put(url, body, content_type="application/json")


def words(response) -> str:
    """The error's words; they are for people: no Python, no stack, no hex."""
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    detail = body["detail"]
    assert "Traceback" not in detail
    assert "Error(" not in detail
    return detail


def source_folder(root: Path) -> Path:
    """A small folder: text, a binary file over one chunk, a folder inside, an empty file."""
    src = root / "src"
    (src / "inner").mkdir(parents=True)
    (src / "notes.txt").write_text("shopping: milk, bread\n")
    (src / "inner" / "blob.bin").write_bytes(os.urandom(300_000) * 2)
    (src / "inner" / "empty").write_bytes(b"")
    return src


def run(job_id: int) -> dict:
    """Run the job inline, as ``manage.py backup`` does when no node runs."""
    from apps.storage.jobs import job_run

    job_run(Job.objects.get(pk=job_id))
    return Job.objects.get(pk=job_id)


# -- auth and schema -------------------------------------------------------------------------------


def test_every_endpoint_needs_the_owners_login(node) -> None:
    anonymous = Client()
    some = uuid.uuid4()
    for method, url in [
        ("get", "snapshots/"),
        ("post", "backups/"),
        ("post", "restores/"),
        ("get", "jobs/1/"),
        ("get", f"snapshots/{some}/files/"),
        ("get", f"snapshots/{some}/download/?path=a"),
        ("get", "holders/"),
        ("post", "holders/invite/"),
        ("post", "holders/check/"),
        ("get", "retention/"),
        ("put", "retention/"),
        ("post", "prune/"),
        ("get", "held/"),
        ("put", f"held/{'cd' * 32}/"),
    ]:
        answer = getattr(anonymous, method)(API + url, content_type="application/json")
        assert answer.status_code in (401, 403), (method, url, answer.status_code)


def test_the_schema_lists_the_storage_endpoints(api) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    if schema.status_code == 404:
        schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    text = schema.content.decode()
    paths = schema.json()["paths"]
    # Each path by itself (the five and the rest), with the methods it is called by.
    for path, method in (
        ("/api/v1/storage/backups/", "post"),
        ("/api/v1/storage/jobs/{job_id}/", "get"),
        ("/api/v1/storage/snapshots/", "get"),
        ("/api/v1/storage/snapshots/{snapshot_id}/files/", "get"),
        ("/api/v1/storage/snapshots/{snapshot_id}/download/", "get"),
        ("/api/v1/storage/restores/", "post"),
        ("/api/v1/storage/holders/", "get"),
        ("/api/v1/storage/holders/invite/", "post"),
        ("/api/v1/storage/held/{party}/", "put"),
    ):
        assert method in paths.get(path, {}), (path, method, sorted(paths.get(path, {})))
    assert "StorageJobOutput" in text


# -- backups and the job ---------------------------------------------------------------------------


def test_bad_backup_input_is_refused_in_words(api, tmp_path) -> None:
    missing = post(api, API + "backups/", {})
    assert missing.status_code == 400
    assert "path" in missing.json()["fields"]
    relative = post(api, API + "backups/", {"path": "Documents"})
    assert relative.status_code == 400
    assert "full path" in words(relative)
    gone = post(api, API + "backups/", {"path": str(tmp_path / "nowhere")})
    assert gone.status_code == 400
    assert "There is no folder at" in words(gone)
    a_file = tmp_path / "a.txt"
    a_file.write_text("x")
    assert "is a file, not a folder" in words(post(api, API + "backups/", {"path": str(a_file)}))
    too_long = post(api, API + "backups/", {"path": "/" + "a" * 5000})
    assert too_long.status_code == 400
    assert not Job.objects.exists()


def test_a_job_that_is_not_here_is_a_404_in_words(api) -> None:
    answer = api.get(API + "jobs/424242/")
    assert answer.status_code == 404
    assert "no such backup or restore" in words(answer)


def test_a_folder_is_backed_up_browsed_downloaded_and_restored(api, tmp_path) -> None:
    src = source_folder(tmp_path)
    started = post(api, API + "backups/", {"path": str(src), "label": "My files"})
    assert started.status_code == 202, started.content
    job = started.json()
    assert job["state"] == "queued"
    assert job["kind"] == "backup"
    again = post(api, API + "backups/", {"path": str(src)})
    assert again.status_code == 409  # one backup of a folder at a time
    assert "already under way" in words(again)
    done = run(job["id"])
    view = api.get(API + f"jobs/{job['id']}/").json()
    assert view["state"] == "done", (done.problem, view)
    assert view["percent"] == 100
    assert view["files_done"] == 3
    snapshots = api.get(API + "snapshots/").json()
    assert [s["label"] for s in snapshots] == ["My files"]
    snap = snapshots[0]
    assert snap["id"] == view["snapshot"]
    assert snap["state"] == "complete"
    assert snap["files"] == 3

    top = api.get(API + f"snapshots/{snap['id']}/files/").json()
    assert [(e["name"], e["kind"]) for e in top["entries"]] == [
        ("inner", "dir"),
        ("notes.txt", "file"),
    ]
    assert (top["page"], top["pages"], top["total"]) == (1, 1, 2)
    inner = api.get(API + f"snapshots/{snap['id']}/files/", {"path": "inner"}).json()
    assert [e["path"] for e in inner["entries"]] == ["inner/blob.bin", "inner/empty"]

    got = api.get(API + f"snapshots/{snap['id']}/download/", {"path": "inner/blob.bin"})
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == (src / "inner" / "blob.bin").read_bytes()
    assert got["Content-Disposition"] == 'attachment; filename="blob.bin"'

    target = tmp_path / "restored"
    restored = post(
        api, API + "restores/", {"snapshot": snap["id"], "target": str(target), "paths": ["inner"]}
    )
    assert restored.status_code == 202, restored.content
    assert run(restored.json()["id"]).state == Job.State.DONE
    assert (target / "inner" / "blob.bin").read_bytes() == (src / "inner" / "blob.bin").read_bytes()
    assert not (target / "notes.txt").exists()  # only the folder asked for


# -- snapshots: paths that are not there -----------------------------------------------------------


def test_files_of_a_path_that_is_not_in_the_backup_are_a_404_in_words(api) -> None:
    snap = seed_snapshot()
    url = API + f"snapshots/{snap.pk}/files/"
    assert api.get(url).json()["total"] == 4
    for path in ("nope", "a-photos/nope", "b-notes.txt", "../../etc"):
        answer = api.get(url, {"path": path})
        assert answer.status_code in (400, 404), path
        assert "backup" in words(answer) or "file" in words(answer)
    assert api.get(url, {"page": "x"}).status_code == 400
    assert api.get(url, {"path": "a\x00b"}).status_code == 400
    assert api.get(API + f"snapshots/{uuid.uuid4()}/files/").status_code == 404
    assert api.get(API + "snapshots/garbage/files/").status_code == 404


def test_a_page_past_the_end_is_empty_not_an_error(api) -> None:
    snap = seed_snapshot()
    page = api.get(API + f"snapshots/{snap.pk}/files/", {"page": "9"}).json()
    assert page["entries"] == []
    assert page["total"] == 4


def test_a_download_of_a_folder_or_a_missing_file_is_a_404(api) -> None:
    snap = seed_snapshot()
    url = API + f"snapshots/{snap.pk}/download/"
    assert api.get(url, {"path": "a-photos"}).status_code == 404
    assert api.get(url, {"path": "nope.txt"}).status_code == 404
    assert api.get(url).status_code == 404


def test_a_restore_into_a_folder_that_is_not_empty_is_refused(api, tmp_path) -> None:
    snap = seed_snapshot()
    there = tmp_path / "there"
    there.mkdir()
    (there / "mine.txt").write_text("keep me")
    answer = post(api, API + "restores/", {"snapshot": str(snap.pk), "target": str(there)})
    assert answer.status_code == 400
    assert "not empty" in words(answer)
    assert (there / "mine.txt").read_text() == "keep me"
    bad = post(api, API + "restores/", {"snapshot": "nope", "target": str(tmp_path / "new")})
    assert bad.status_code == 404
    assert "backup" in words(bad)
    up = post(
        api,
        API + "restores/",
        {"snapshot": str(snap.pk), "target": str(tmp_path / "n"), "paths": ["../x"]},
    )
    assert up.status_code == 400
    assert not Job.objects.exists()


# -- holders, retention, held ----------------------------------------------------------------------


def test_holders_say_how_safe_the_backups_are(api) -> None:
    empty = api.get(API + "holders/").json()
    assert empty["holders"] == []
    assert empty["redundancy"] == "Nothing is backed up yet."
    seed_holders(used=95 * MB, friend="Sam's box")
    found = api.get(API + "holders/").json()
    names = {h["name"]: h for h in found["holders"]}
    assert set(names) == {"This device", "Sam's box"}
    assert names["This device"]["free"] == 5 * MB
    assert names["Sam's box"]["state"] == "unreachable"
    assert any("95% full" in w for w in found["warnings"])
    assert found["totals"]["at_risk"] == 0


def test_retention_is_read_set_and_checked(api) -> None:
    assert api.get(API + "retention/").json() == {
        "keep_last": 10,
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 12,
    }
    bad = put(api, API + "retention/", {"keep_last": -1, "keep_daily": 1})
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"keep_last", "keep_weekly", "keep_monthly"}
    keep = {"keep_last": 2, "keep_daily": 0, "keep_weekly": 1, "keep_monthly": 3}
    assert put(api, API + "retention/", keep).json() == keep
    assert api.get(API + "retention/").json() == keep


def test_prune_says_what_it_did(api) -> None:
    seed_snapshot()
    answer = post(api, API + "prune/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["snapshots"] == 0
    assert body["words"].startswith("Cleaned up")


def test_a_check_with_nothing_backed_up_is_a_conflict_in_words(api) -> None:
    answer = post(api, API + "holders/check/")
    assert answer.status_code == 409
    assert "Nothing is backed up yet" in words(answer)


def test_an_invite_link_is_made_and_not_cached(api) -> None:
    made = post(api, API + "holders/invite/", {"quota_mb": 1024, "label": "Sam"})
    assert made.status_code == 201, made.content
    assert made["Cache-Control"] == "no-store"
    assert made.json()["link"].startswith("sereus:")
    assert post(api, API + "holders/invite/", {"quota_mb": 0}).status_code == 400
    assert post(api, API + "holders/invite/", {"quota_mb": "lots"}).status_code == 400


def test_held_lists_only_others_and_a_stranger_cannot_be_granted(api) -> None:
    assert api.get(API + "held/").json() == []
    answer = put(api, API + f"held/{'cd' * 32}/", {"quota_mb": 10})
    assert answer.status_code == 404
    assert "holds no backups for them" in words(answer)
    assert put(api, API + "held/garbage/", {"quota_mb": 10}).status_code == 404


def test_a_file_whose_shares_are_gone_is_refused_in_words_before_any_byte(
    api, tmp_path, settings
) -> None:
    import shutil

    src = source_folder(tmp_path)
    job = post(api, API + "backups/", {"path": str(src)}).json()
    snapshot = run(job["id"]).snapshot
    shutil.rmtree(Path(settings.DATA_DIR) / "storage" / "held")  # the disk lost every share
    outbox = Path(settings.DATA_DIR) / "storage" / "outbox"
    if outbox.exists():
        shutil.rmtree(outbox)
    url = API + f"snapshots/{snapshot}/download/"
    answer = api.get(url, {"path": "notes.txt"})
    assert answer.status_code in (404, 503), answer.status_code
    assert not answer.has_header("Content-Disposition")
    said = words(answer)
    assert not any(c in said for c in "{}[]")  # words, not a dump
    page = api.get(f"/node/storage/snapshots/{snapshot}/download/", {"path": "notes.txt"})
    assert page.status_code == 302  # back to the folder, the words shown there
    shown = unescape(api.get(page["Location"]).content.decode())
    assert said in shown


def test_each_refusal_has_its_status() -> None:
    from apps.storage.apis import StorageFailed
    from apps.storage.space import StorageError

    expected = {
        "invalid": 400,
        "forbidden": 403,
        "not_found": 404,
        "conflict": 409,
        "unavailable": 503,
        "unreachable": 503,
        "full": 507,
    }
    for code, status in expected.items():
        failed = StorageFailed(StorageError(code, "In words."))
        assert (failed.status_code, failed.default_code, str(failed.detail)) == (
            status,
            code,
            "In words.",
        )
