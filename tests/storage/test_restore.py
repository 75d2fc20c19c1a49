"""Restores on this node: a whole tree back byte for byte with modes, mtimes and links; only some
paths; a file streamed; refusals in words; a damaged share marked and the restore failing in
words; a forged manifest never writing outside the target."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.storage import held, jobs, restore, space
from apps.storage.models import Chunk, FileEntry, Holder, Job, Share
from apps.storage.space import StorageError
from tests.storage.test_backup import device_holder, rows, run_backup
from tests.support.storage import tree_diff, tree_make

pytestmark = pytest.mark.django_db(transaction=True)


def run_restore(snapshot: str, target: Path, paths: list[str] | None = None) -> Job:
    job = restore.restore_start(snapshot=snapshot, target=str(target), paths=paths)
    jobs.job_run(job)
    job.refresh_from_db()
    return job


@pytest.fixture
def backed_up(node, tmp_path):
    device_holder()
    tree = tree_make(tmp_path / "src", size=2 << 20)
    job = run_backup(tree.root)
    assert job.state == Job.State.DONE, job.problem
    return tree, job


def test_a_restore_gives_the_tree_back_exactly(backed_up, tmp_path) -> None:
    tree, backup_job = backed_up
    job = run_restore("latest", tmp_path / "back")
    assert job.state == Job.State.DONE, job.problem
    assert tree_diff(tree.root, tmp_path / "back") == []
    assert (job.files_done, job.bytes_done) == (tree.files, tree.size)
    assert jobs.job_view(job)["percent"] == 100
    # A file streamed (the download) is its bytes.
    some = tree.random_files[0]
    path = some.relative_to(tree.root).as_posix()
    assert b"".join(restore.file_stream(backup_job.snapshot, path)) == some.read_bytes()


def test_only_the_paths_asked_are_restored(backed_up, tmp_path) -> None:
    tree, backup_job = backed_up
    job = run_restore(backup_job.snapshot, tmp_path / "some", ["/documents/taxes/"])
    assert job.state == Job.State.DONE, job.problem
    got = {p.relative_to(tmp_path / "some").as_posix() for p in (tmp_path / "some").rglob("*")}
    assert got
    assert all(p == "documents" or p.startswith("documents/taxes") for p in got), got
    assert tree_diff(tree.root / "documents" / "taxes", tmp_path / "some/documents/taxes") == []


def test_a_restore_never_overwrites_nor_writes_in_the_nodes_data(backed_up, data_dir, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    with pytest.raises(StorageError, match=r"That folder is not empty; restore into a new"):
        restore.restore_start(snapshot="latest", target=str(full))
    with pytest.raises(StorageError, match="own data"):
        restore.restore_start(snapshot="latest", target=str(data_dir / "restored"))
    with pytest.raises(StorageError, match="no complete backup by that name"):
        restore.restore_start(snapshot="not-a-snapshot", target=str(tmp_path / "new"))
    with pytest.raises(StorageError, match="not a path inside the backup"):
        restore.restore_start(snapshot="latest", target=str(tmp_path / "new"), paths=["../x"])
    assert (full / "mine.txt").read_text() == "keep me"


def test_a_folder_filled_before_the_restore_ran_is_left_alone(backed_up, tmp_path) -> None:
    target = tmp_path / "later"
    job = restore.restore_start(snapshot="latest", target=str(target))
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    jobs.job_run(job)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "not empty" in job.problem
    assert [p.name for p in target.iterdir()] == ["mine.txt"]


def test_a_damaged_share_is_marked_and_the_restore_fails_in_words(backed_up, tmp_path) -> None:
    tree, backup_job = backed_up
    some = tree.random_files[0]
    path = some.relative_to(tree.root).as_posix()
    entry = rows(FileEntry, snapshot=backup_job.snapshot, path=path)[0]
    chunk = rows(Chunk, key=entry.chunks[0])[0]
    share = rows(Share, chunk=chunk.pk)[0]
    stored = held.path_of(held.own_party(), bytes.fromhex(share.digest))
    data = bytearray(stored.read_bytes())
    data[100] ^= 1
    stored.write_bytes(bytes(data))
    job = run_restore("latest", tmp_path / "back")
    assert job.state == Job.State.FAILED
    assert f"Restored {tree.files - 1} of {tree.files} files" in job.problem
    assert path in job.problem
    assert "cannot be fetched now" in job.problem
    assert "Traceback" not in job.problem
    marked = rows(Share, pk=share.pk)[0]
    assert marked.state in (Share.State.MISSING, Share.State.CORRUPT)
    # Everything else came back; the damaged file was not left half written.
    assert not (tmp_path / "back" / path).exists()
    assert not list((tmp_path / "back").rglob(".sereus-restoring-*"))


def test_a_forged_manifest_writes_nothing_outside_the_target(backed_up, tmp_path) -> None:
    _tree, backup_job = backed_up
    thread = space.storage_thread()
    a_file = rows(FileEntry, snapshot=backup_job.snapshot, kind=FileEntry.Kind.FILE)[0]
    outside = tmp_path / "outside"
    outside.mkdir()

    def forge() -> None:
        absolute = str(tmp_path / "absolute.txt")
        for path in ("../escape.txt", absolute, "a/../../up.txt", "nul\x00.txt"):
            FileEntry.objects.create(
                snapshot=backup_job.snapshot, path=path, chunks=a_file.chunks, size=a_file.size
            )
        FileEntry.objects.create(
            snapshot=backup_job.snapshot, path="door", kind="link", target=str(outside)
        )
        FileEntry.objects.create(
            snapshot=backup_job.snapshot,
            path="door/through.txt",
            chunks=a_file.chunks,
            size=a_file.size,
        )

        # Damaged fields: a list of parts that is none, a time no file system takes.
        FileEntry.objects.create(snapshot=backup_job.snapshot, path="odd.txt", chunks="ab", size=2)
        FileEntry.objects.create(
            snapshot=backup_job.snapshot,
            path="late.txt",
            chunks=a_file.chunks,
            size=a_file.size,
            mtime_ns=2**63 - 1,
            mode=0o7777,
        )
        # A link to a folder outside (a fair thing to back up), then an entry through it.
        FileEntry.objects.create(
            snapshot=backup_job.snapshot, path="gate", kind="link", target=str(outside)
        )
        FileEntry.objects.create(
            snapshot=backup_job.snapshot, path="gate/new/inner", kind="link", target="x"
        )

    space.write(thread, forge)
    target = tmp_path / "deep" / "back"
    job = run_restore(backup_job.snapshot, target)
    assert job.state == Job.State.FAILED
    assert "not a safe path; skipped" in job.problem
    assert "odd.txt: the backup's list of this file's parts is damaged." in job.problem
    assert "unexpected" not in job.problem
    if (target / "late.txt").exists():  # a file system that took the time: no set-id bits
        assert (target / "late.txt").stat().st_mode & 0o7000 == 0
    assert "gate/new/inner: it would be written outside the folder; skipped." in job.problem
    assert (target / "gate").is_symlink()
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert not os.path.lexists(tmp_path / "absolute.txt")
    # The link that would have led outside was not made over a folder the restore wrote.
    assert not (target / "door").is_symlink()


def test_any_k_good_shares_restore_a_chunk_and_the_bad_one_is_marked(node, tmp_path) -> None:
    (own,) = device_holder()
    thread = space.storage_thread()

    def disks() -> None:
        # Two more holders this node serves itself: three in all, so k = 2 of n = 3.
        for label in ("Disk B", "Disk C"):
            Holder.objects.create(
                kind=Holder.Kind.DEVICE,
                device=own.device,
                peer_id=own.peer_id,
                label=label,
                quota=1 << 40,
            )

    space.write(thread, disks)
    source = tmp_path / "src"
    source.mkdir()
    (source / "one.bin").write_bytes(os.urandom(150_000))
    job = run_backup(source)
    assert job.state == Job.State.DONE, job.problem
    (chunk,) = rows(Chunk)
    assert (chunk.k, chunk.n, chunk.state) == (2, 3, Chunk.State.PLACED)
    shares = sorted(rows(Share, chunk=chunk.pk), key=lambda s: s.index)
    assert len({str(s.holder) for s in shares}) == 3
    # The first share asked for is damaged on its holder's disk.
    ranked = list(restore.holders_ranked(thread))
    first = next(s for s in shares if s.holder == ranked[0])
    stored = held.path_of(held.own_party(), bytes.fromhex(first.digest))
    stored.write_bytes(b"\0" * stored.stat().st_size)
    back = run_restore("latest", tmp_path / "back")
    assert back.state == Job.State.DONE, back.problem
    assert (tmp_path / "back" / "one.bin").read_bytes() == (source / "one.bin").read_bytes()
    assert rows(Share, pk=first.pk)[0].state in (Share.State.MISSING, Share.State.CORRUPT)
    assert {rows(Share, pk=s.pk)[0].state for s in shares if s.pk != first.pk} == {
        Share.State.PLACED
    }
