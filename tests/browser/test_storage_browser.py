"""Backing up a folder from the Backups page and getting it back, in a real browser (Debian's
Chromium through Playwright) against a real node process on 127.0.0.1 (issue 18).

Alice claims her node, opens Backups, backs up a small generated folder (a text file with an
odd name, a binary file of several chunks, a folder inside): the job's progress bar goes live
to done, the backup is listed, she browses it (folders first, breadcrumbs), downloads a file
and gets its very bytes, restores one folder into a new folder on the node, looks at where her
backups are kept and makes an invite for a friend (the link and its QR code). Every page is
checked as a person sees it at the phone's and the desktop's width (nothing wider than the
screen, no template syntax, no hex id, no unlabelled control, axe-core finds nothing serious);
the screenshots are kept under ``$TMPDIR/sereus-storage``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_devices_browser import looks_right
from tests.browser.test_ledger_browser import DESKTOP, click
from tests.browser.test_look import AXE
from tests.browser.test_messaging_browser import browser, claimed  # noqa: F401 - fixtures
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.support.p2p import Peer

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-storage"
DONE_S = 90  # a backup of a few MB takes seconds; slack for a busy machine
ODD_NAME = "Rechnung “März” & co; 'x'.txt"


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    node = Peer(tmp_path / "node")
    try:
        yield node.start()
    finally:
        node.kill()


def folder(root: Path) -> Path:
    src = root / "Documents"
    (src / "Photos").mkdir(parents=True)
    (src / ODD_NAME).write_text("Betrag: 42 €\n")
    (src / "Photos" / "beach.raw").write_bytes(os.urandom(1 << 20) * 3)  # a few chunks
    (src / "Photos" / "note.txt").write_text("sunny\n")
    return src


def test_a_folder_is_backed_up_browsed_downloaded_and_restored_from_the_page(
    peer: Peer,
    browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    src = folder(tmp_path)
    alice = claimed(browser, "alice", peer)
    alice.context.add_init_script(path=str(AXE))
    page = alice.page
    page.set_viewport_size(DESKTOP)
    base = alice.url + "/node/storage/"

    page.goto(alice.url + "/node/settings/")
    click(page, page.get_by_role("link", name="Backups", exact=True))
    assert page.url == base
    page.get_by_role("heading", name="No backups yet").wait_for()
    looks_right(alice, SHOTS, "backups-empty")

    # Back up: the job's page follows it live to done.
    page.get_by_label("Folder to back up").fill(str(src))
    page.get_by_label("A name for this backup (optional)").fill("Documents before the trip")
    click(page, page.get_by_role("button", name="Back up now"))
    assert "/node/storage/jobs/" in page.url
    navigations = alice.navigations
    page.locator("progress.bar[value='100']").wait_for(timeout=DONE_S * 1000)
    assert alice.navigations == navigations  # live by polling, not by reloading the page
    status = page.get_by_role("status").first.inner_text()
    assert "done" in status.lower(), status
    assert "new data:" in page.locator(".job").inner_text()
    looks_right(alice, SHOTS, "backup-done")

    # The backup, browsed: folders first, then into a folder and back by the breadcrumb.
    click(page, page.get_by_role("link", name="See the files of this backup"))
    names = page.locator("#entries .row-title").all_inner_texts()
    assert names == ["Photos", ODD_NAME]
    looks_right(alice, SHOTS, "snapshot")
    click(page, page.get_by_role("link", name="Photos"))
    assert page.locator("#entries .row-title").all_inner_texts() == ["beach.raw", "note.txt"]
    assert page.locator(".crumbs [aria-current='page']").inner_text() == "Photos"
    looks_right(alice, SHOTS, "snapshot-folder")

    # A download is the file's very bytes, under its own name.
    with page.expect_download() as got:
        page.get_by_role("link", name="beach.raw").click()
    download = got.value
    assert download.suggested_filename == "beach.raw"
    assert Path(download.path()).read_bytes() == (src / "Photos" / "beach.raw").read_bytes()
    click(page, page.locator(".crumbs a").first)
    with page.expect_download() as got:
        page.get_by_role("link", name=ODD_NAME).click()
    assert got.value.suggested_filename == ODD_NAME
    assert Path(got.value.path()).read_bytes() == (src / ODD_NAME).read_bytes()

    # Restore only the Photos folder into a new folder.
    click(page, page.get_by_role("link", name="Photos"))
    target = tmp_path / "restored"
    page.get_by_label("Only the folder Photos").check()
    page.get_by_label("Restore into").fill(str(target))
    click(page, page.get_by_role("button", name="Restore"))
    page.locator("progress.bar[value='100']").wait_for(timeout=DONE_S * 1000)
    assert f"Your files are in {target}" in page.locator(".job").inner_text()
    looks_right(alice, SHOTS, "restore-done")
    for name in ("beach.raw", "note.txt"):
        restored = (target / "Photos" / name).read_bytes()
        assert restored == (src / "Photos" / name).read_bytes()
    assert not (target / ODD_NAME).exists()

    # The list, and where the backups are kept.
    page.goto(base)
    row = page.locator("#snapshots li").first
    assert "Documents before the trip" in row.inner_text()
    assert "3 files" in row.inner_text()
    looks_right(alice, SHOTS, "backups")
    click(page, page.get_by_role("link", name="Where they are kept"))
    page.get_by_role("heading", name="How safe it is").wait_for()
    looks_right(alice, SHOTS, "holders")

    # An invite for a friend: the link and its QR code, shown once.
    page.get_by_label("Room to ask for (MB)").fill("2048")
    page.get_by_label("Who is it for? (optional)").fill("Sam")
    click(page, page.get_by_role("button", name="Make an invite link"))
    page.get_by_role("heading", name="Invite a friend to hold backups: Sam").wait_for()
    assert page.locator("#share-link").input_value().startswith("sereus:")
    assert page.locator("figure.qr svg").count() == 1
    looks_right(alice, SHOTS, "invite")
