"""The storage pages, in process: the backups list and its warning card, a backup's folders
(breadcrumbs, folders first, no hex ids), a file downloaded under its own name, the restore and
backup forms refusing bad input in words, the holders page with its totals and redundancy in
words, the invite link with its QR code, retention, and what a friend's node holds for others.

The manifest rows are written as the services would (one op of the storage thread); what the
other helpers' services do is tested where it lands, and skipped here until then."""

from __future__ import annotations

import re
import time
import uuid
from html import unescape

import pytest
from django.test import Client

from apps.storage import space
from apps.storage.models import Chunk, FileEntry, Holder, Job, Share, Snapshot
from tests.checklist.conftest import browser, owner_user  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

BACKUPS = "/node/storage/"
HOLDERS = "/node/storage/holders/"
HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{12,}(?![0-9A-Za-z])")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MB = 1 << 20


def visible(html: str) -> str:
    """The page's text as a person reads it (no tags, scripts, svg or attribute values)."""
    html = re.sub(r"<(script|style|svg|textarea)\b.*?</\1>", "", html, flags=re.S)
    # Sizes and times are joined by no-break spaces (they never wrap): read as spaces.
    text = unescape(re.sub(r"<[^>]+>", " ", html)).replace("\xa0", " ")
    return re.sub(r"[ \t]+", " ", text)


def now_ms() -> int:
    return int(time.time() * 1000)


def seed_snapshot(label: str = "Documents") -> Snapshot:
    """A complete backup of /home/alice/Documents: two folders, three files and a link."""
    thread = space.storage_ensure()
    me = space.device_key().hex()

    def add() -> Snapshot:
        made = Snapshot.objects.create(
            label=label,
            source="/home/alice/Documents",
            device=me,
            started_ms=now_ms() - 60_000,
            finished_ms=now_ms(),
            state=Snapshot.State.COMPLETE,
            files=3,
            dirs=2,
            bytes=5 * MB + 300,
            new_bytes=4 * MB,
            stored_bytes=8 * MB,
        )
        mtime = time.time_ns()
        rows = [
            ("b-notes.txt", FileEntry.Kind.FILE, 300),
            ("a-photos", FileEntry.Kind.DIR, 0),
            ("zz-folder", FileEntry.Kind.DIR, 0),
            ("a-photos/beach “day” 1.jpg", FileEntry.Kind.FILE, 5 * MB),
            ("zz-folder/deep.txt", FileEntry.Kind.FILE, 0),
        ]
        for path, kind, size in rows:
            FileEntry.objects.create(
                snapshot=made.pk, path=path, kind=kind, size=size, mtime_ns=mtime
            )
        FileEntry.objects.create(
            snapshot=made.pk, path="latest", kind=FileEntry.Kind.LINK, target="a-photos"
        )
        return made

    return space.write(thread, add)


def seed_holders(*, used: int = 0, quota: int = 100 * MB, friend: str = "") -> list[Holder]:
    thread = space.storage_ensure()
    me = space.device_key().hex()

    def add() -> list[Holder]:
        made = [
            Holder.objects.create(
                kind=Holder.Kind.DEVICE,
                device=me,
                quota=quota,
                used=used,
                verified_ms=now_ms() - 120_000,
            )
        ]
        if friend:
            made.append(
                Holder.objects.create(
                    kind=Holder.Kind.PEER,
                    device="ab" * 32,
                    label=friend,
                    quota=quota,
                    state=Holder.State.UNREACHABLE,
                )
            )
        return made

    return space.write(thread, add)


def seed_chunk(holders: list[Holder], *, k: int, n: int, placed: int) -> Chunk:
    """A chunk of 1 MB split k-of-n, ``placed`` of its shares on the holders by turns."""
    thread = space.storage_ensure()

    def add() -> Chunk:
        chunk = Chunk.objects.create(
            key=uuid.uuid4().hex * 2, size=MB, packed=MB, k=k, n=n, state=Chunk.State.PLACED
        )
        for index in range(n):
            Share.objects.create(
                chunk=chunk.pk,
                index=index,
                holder=holders[index % len(holders)].pk,
                digest=uuid.uuid4().hex * 2,
                size=MB // k,
                state=Share.State.PLACED if index < placed else Share.State.MISSING,
            )
        return chunk

    return space.write(thread, add)


# -- backups ----------------------------------------------------------------------------------


def test_an_empty_backups_page_says_what_to_do(browser) -> None:  # noqa: F811
    page = browser.get(BACKUPS)
    assert page.status_code == 200
    text = visible(page.content.decode())
    assert "Back up a folder" in text
    assert "No backups yet" in text
    # No storage thread yet: no holder warning before there is anything to warn about.
    assert "Only this device" not in text


def test_the_list_shows_each_backup_in_words_and_warns_of_a_lone_holder(browser) -> None:  # noqa: F811
    snapshot = seed_snapshot()
    seed_holders()
    html = browser.get(BACKUPS).content.decode()
    text = visible(html)
    assert "Documents" in text
    assert "/home/alice/Documents" in text
    assert "3 files" in text
    assert "new data: 4.0 MB" in text
    assert "this device" in text
    assert "Only this device holds your backups: add a friend or another device" in text
    assert "Check holders now" in text
    assert f"/node/storage/snapshots/{snapshot.pk}/" in html
    assert not HEX_ID.search(text)
    assert not UUID.search(text)


def test_a_full_or_unreachable_holder_is_named_in_the_warning(browser) -> None:  # noqa: F811
    seed_holders(used=95 * MB, friend="Sam's box")
    text = visible(browser.get(BACKUPS).content.decode())
    assert "Only this device" not in text  # two holders
    assert "This device is 95% full" in text
    assert "Sam's box has not answered lately" in text


def test_the_backup_form_refuses_a_relative_path_in_words(browser) -> None:  # noqa: F811
    page = browser.post(BACKUPS + "backup/", {"path": "Documents", "label": ""})
    assert page.status_code == 400
    assert "starting with “/”" in visible(page.content.decode())
    assert not Job.objects.exists()


def test_a_folder_that_does_not_exist_is_refused_in_words(browser, tmp_path) -> None:  # noqa: F811
    page = browser.post(BACKUPS + "backup/", {"path": str(tmp_path / "nope"), "label": ""})
    assert page.status_code == 400
    text = visible(page.content.decode())
    assert "Traceback" not in text
    assert not Job.objects.filter(state=Job.State.RUNNING).exists()


def test_a_job_page_shows_progress_and_polls_only_while_it_runs(browser) -> None:  # noqa: F811
    job = Job.objects.create(
        kind=Job.Kind.BACKUP,
        state=Job.State.RUNNING,
        source="/home/alice/Documents",
        files_total=10,
        files_done=4,
        bytes_total=10 * MB,
        bytes_done=5 * MB,
        new_bytes=3 * MB,
    )
    html = browser.get(f"/node/storage/jobs/{job.pk}/").content.decode()
    assert 'value="50"' in html
    assert "hx-trigger" in html
    assert '<meta http-equiv="refresh"' in html  # without JavaScript the page refreshes
    text = visible(html)
    assert "4 of 10 files" in text
    assert "5.0 MB of 10.0 MB" in text
    assert "new data: 3.0 MB" in text
    job.state, job.bytes_done, job.files_done = Job.State.DONE, 10 * MB, 10
    job.save()
    live = browser.get(f"/node/storage/jobs/{job.pk}/live/").content.decode()
    assert "hx-trigger" not in live
    assert 'value="100"' in live
    assert "done" in visible(live)
    assert browser.get("/node/storage/jobs/999999/").status_code == 404


# -- a snapshot --------------------------------------------------------------------------------


def test_a_backup_is_browsed_folders_first_with_breadcrumbs(browser) -> None:  # noqa: F811
    snapshot = seed_snapshot()
    url = f"/node/storage/snapshots/{snapshot.pk}/"
    html = browser.get(url).content.decode()
    text = visible(html)
    names = re.findall(r'<span class="row-title">([^<]+)</span>', html)
    assert names == ["a-photos", "zz-folder", "b-notes.txt", "latest"]  # folders first
    assert "link to a-photos" in text
    assert not HEX_ID.search(text)
    assert not UUID.search(text)
    inner = browser.get(url, {"path": "a-photos"}).content.decode()
    assert "beach “day” 1.jpg" in unescape(inner)
    assert "5.0 MB" in visible(inner)
    assert 'aria-current="page">a-photos<' in inner
    assert f'href="{url}">Documents<' in inner  # the crumb back to the top
    assert "Only the folder a-photos" in visible(inner)


def test_a_path_that_is_not_in_the_backup_is_a_404_in_words(browser) -> None:  # noqa: F811
    snapshot = seed_snapshot()
    url = f"/node/storage/snapshots/{snapshot.pk}/"
    for path in ("nope", "../etc", "b-notes.txt"):
        assert browser.get(url, {"path": path}).status_code == 404, path
    assert browser.get("/node/storage/snapshots/not-a-uuid/").status_code == 404
    assert browser.get(f"/node/storage/snapshots/{uuid.uuid4()}/").status_code == 404


def test_the_restore_form_refuses_a_relative_target(browser) -> None:  # noqa: F811
    snapshot = seed_snapshot()
    page = browser.post(
        f"/node/storage/snapshots/{snapshot.pk}/restore/", {"target": "restored", "scope": "all"}
    )
    assert page.status_code == 400
    assert "starting with “/”" in visible(page.content.decode())


def test_a_restore_into_a_non_empty_folder_is_refused_in_words(browser, tmp_path) -> None:  # noqa: F811
    snapshot = seed_snapshot()
    (tmp_path / "there.txt").write_text("mine")
    page = browser.post(
        f"/node/storage/snapshots/{snapshot.pk}/restore/", {"target": str(tmp_path)}
    )
    assert page.status_code == 400
    assert (tmp_path / "there.txt").read_text() == "mine"
    assert "Traceback" not in page.content.decode()


def test_a_download_of_a_folder_or_nothing_is_a_404(browser) -> None:  # noqa: F811
    snapshot = seed_snapshot()
    url = f"/node/storage/snapshots/{snapshot.pk}/download/"
    assert browser.get(url, {"path": "a-photos"}).status_code == 404
    assert browser.get(url, {"path": "missing.txt"}).status_code == 404
    assert browser.get(url, {"path": "../../etc/passwd"}).status_code == 404


def test_a_downloaded_name_is_safe_whatever_it_is() -> None:
    from apps.storage.views import file_response

    response = file_response(iter([b"x"]), 'a "quoted"\r\n/name é.txt', 1)
    header = response["Content-Disposition"]
    assert header.startswith("attachment; filename*=utf-8''")
    assert "\r" not in header
    assert "\n" not in header
    assert '"quoted"' not in header
    assert response["Content-Length"] == "1"


# -- holders -----------------------------------------------------------------------------------


def test_the_holders_page_says_how_safe_the_backups_are(browser) -> None:  # noqa: F811
    holders = seed_holders(used=30 * MB, friend="Sam's box")
    seed_chunk(holders, k=1, n=2, placed=2)  # safe: a copy on each
    seed_chunk(holders, k=1, n=2, placed=1)  # one copy left: at risk
    html = browser.get(HOLDERS).content.decode()
    text = visible(html)
    assert "A full copy on each of 2 holders: any one of them restores everything." in text
    assert "This device" in text
    assert "Sam's box" in text
    assert "your device" in text
    assert "a friend's node" in text
    assert "30.0 MB used of 100.0 MB" in text
    assert "70.0 MB free" in text
    assert "checked 2 minutes ago" in text
    assert "not reachable lately" in text
    assert "1 piece at risk" in text
    assert 'value="30"' in html  # the fill bar
    assert "Invite a friend to hold backups" in text
    assert not HEX_ID.search(text)
    assert not UUID.search(text)


def test_any_k_of_n_in_words() -> None:
    from apps.storage.selectors import Totals, redundancy_words

    assert redundancy_words(Totals(1, 1, 1, 0, 2, 4, 0)) == (
        "Any 2 of 4 holders restore everything."
    )
    assert "Nothing is backed up yet" in redundancy_words(Totals(0, 0, 0, 0, None, None, 0))
    assert "losing it loses the backup" in redundancy_words(Totals(1, 1, 1, 0, 1, 1, 0))


def test_retention_is_refused_below_zero_in_words(browser) -> None:  # noqa: F811
    page = browser.post(
        HOLDERS + "retention/",
        {"keep_last": "-1", "keep_daily": "7", "keep_weekly": "4", "keep_monthly": "x"},
    )
    assert page.status_code == 400
    text = visible(page.content.decode())
    assert "greater than or equal to 0" in text
    assert "Enter a whole number" in text


def test_retention_is_saved_and_shown(browser) -> None:  # noqa: F811
    seed_holders()
    keep = {"keep_last": "3", "keep_daily": "0", "keep_weekly": "2", "keep_monthly": "6"}
    assert browser.post(HOLDERS + "retention/", keep).status_code == 302
    from apps.storage.selectors import retention

    assert retention() == {k: int(v) for k, v in keep.items()}


def test_an_invite_link_is_shown_once_with_its_qr_code(browser) -> None:  # noqa: F811
    page = browser.post(HOLDERS + "invite/", {"quota_mb": "2048", "label": "Sam"})
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert "<svg" in html
    assert "sereus:" in html
    assert "Invite a friend to hold backups: Sam" in visible(html)


def test_an_invite_for_no_room_is_refused_in_words(browser) -> None:  # noqa: F811
    page = browser.post(HOLDERS + "invite/", {"quota_mb": "0"})
    assert page.status_code == 400
    assert "greater than or equal to 1" in visible(page.content.decode())


def test_a_friends_node_lists_whom_it_holds_for_with_a_form(browser, monkeypatch) -> None:  # noqa: F811
    from apps.storage import selectors

    rows = [
        {"party": "cd" * 32, "label": "Alice", "used": 3 * MB, "quota": 100 * MB, "shares": 7},
    ]
    monkeypatch.setattr(selectors, "held_list", lambda: rows)
    html = browser.get(HOLDERS).content.decode()
    text = visible(html)
    assert "You hold backups for" in text
    assert "Alice" in text
    assert "3.0 MB used of 100.0 MB · 7 shares" in text
    assert 'value="100"' in html
    assert f"/node/storage/holders/held/{'cd' * 32}/" in html
    # A party this node does not hold for: nothing to change.
    missing = browser.post(f"/node/storage/holders/held/{'ef' * 32}/", {"quota_mb": "5"})
    assert missing.status_code == 404


def test_pages_need_a_login(node) -> None:
    client = Client()
    for url in (BACKUPS, HOLDERS, f"/node/storage/snapshots/{uuid.uuid4()}/"):
        page = client.get(url)
        assert page.status_code == 302, url
        assert "login" in page["Location"], url


def test_check_words_say_what_was_found() -> None:
    from apps.storage.holder_views import check_words

    audited = {"holders": 2, "verified": 10, "missing": 1, "corrupt": 0, "unreachable": 1}
    assert check_words(audited, {"repaired": 1, "lost": 0}) == (
        "Checked 2 holders: 10 shares proved held, 1 missing, 1 holder not reachable; "
        "1 share placed again."
    )
    assert "nothing to check" in check_words({"holders": 0}, {})


def test_check_holders_now_says_what_it_found(browser, tmp_path) -> None:  # noqa: F811
    from apps.storage.backup import backup_start
    from apps.storage.jobs import job_run

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"hello " * 1000)
    job_run(backup_start(path=str(src)))
    page = browser.post(HOLDERS + "check/", {"next": BACKUPS}, follow=True)
    assert page.redirect_chain[-1][0] == BACKUPS
    text = visible(page.content.decode())
    assert "Checked 1 holder:" in text
    assert "proved held" in text


def test_a_big_folder_is_shown_a_page_at_a_time(browser, monkeypatch) -> None:  # noqa: F811
    from apps.storage import selectors

    monkeypatch.setattr(selectors, "PAGE", 2)  # four entries at the top: two pages
    snapshot = seed_snapshot()
    url = f"/node/storage/snapshots/{snapshot.pk}/"
    first = browser.get(url).content.decode()
    assert re.findall(r'<span class="row-title">([^<]+)</span>', first) == ["a-photos", "zz-folder"]
    assert "Page 1 of 2" in visible(first)
    second = browser.get(url, {"page": "2"}).content.decode()
    assert re.findall(r'<span class="row-title">([^<]+)</span>', second) == [
        "b-notes.txt",
        "latest",
    ]
    assert f'href="{url}?page=1">Previous' in second
    assert browser.get(url, {"page": "zz"}).status_code == 200  # the first page
