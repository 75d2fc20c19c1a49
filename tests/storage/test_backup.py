"""Backups on this node with this device as the holder: the snapshot and its rows, the
incremental base, the walk's links, folders and skipped specials, the manifest written in few
ops, the refusals in words, and the jobs runner's rules."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from apps.storage import backup, engine, hold, jobs, keys, placement, space, walk
from apps.storage.models import Chunk, FileEntry, Holder, Job, Share, Snapshot
from apps.storage.space import StorageError
from tests.core.threads.conftest import log_size
from tests.support.storage import NAME_MARK, NEEDLE, leaks, tree_make

pytestmark = pytest.mark.django_db(transaction=True)


# -- helpers the other storage tests of backups import ------------------------------------------


def device_holder() -> list[Holder]:
    """This device as the party's one holder (its own row, as the worker keeps it)."""
    space.storage_ensure()
    hold.holders_refresh()
    return placement.holders_now()


def run_backup(source: Path, label: str = "") -> Job:
    job = backup.backup_start(path=str(source), label=label)
    jobs.job_run(job)
    job.refresh_from_db()
    return job


def rows(model, **filters) -> list:
    thread = space.storage_thread()
    return list(model.objects.using(space.using(thread)).filter(**filters))


def snapshot_of(job: Job) -> Snapshot:
    return rows(Snapshot, pk=job.snapshot)[0]


# -- tests ---------------------------------------------------------------------------------------


def test_a_backup_records_every_file_and_places_sealed_shares(node, data_dir, tmp_path) -> None:
    device_holder()
    tree = tree_make(tmp_path / "src", size=3 << 20)
    job = run_backup(tree.root, "home")
    assert job.state == Job.State.DONE, job.problem
    snap = snapshot_of(job)
    assert snap.state == Snapshot.State.COMPLETE
    assert (snap.files, snap.bytes) == (tree.files, tree.size)
    assert snap.label == "home"
    assert snap.finished_ms >= snap.started_ms
    assert job.files_done == job.files_total == tree.files
    assert job.bytes_done == job.bytes_total == tree.size
    # Duplicates stored once: what is new is less than what was backed up.
    assert 0 < snap.new_bytes <= tree.size - tree.duplicate_bytes
    files = {f.path: f for f in rows(FileEntry, snapshot=snap.pk)}
    kinds = {f.kind for f in files.values()}
    assert kinds == {FileEntry.Kind.FILE, FileEntry.Kind.DIR, FileEntry.Kind.LINK}
    link = next(f for f in files.values() if f.kind == FileEntry.Kind.LINK)
    assert link.target.startswith("2023/") or ".." in link.target or link.target.endswith(".jpg")
    assert files["private"].mode == 0o700
    chunks = rows(Chunk)
    assert chunks
    assert all(c.state == Chunk.State.PLACED and (c.k, c.n) == (1, 1) for c in chunks)
    names = {c.key for c in chunks}
    assert all(set(f.chunks) <= names for f in files.values())
    shares = rows(Share)
    assert len(shares) == len(chunks)
    assert all(s.state == Share.State.PLACED and len(bytes(s.answers)) == 16 * 16 for s in shares)
    # The holder's disk holds neither plaintext nor a file name.
    found = leaks(data_dir / "storage", [NEEDLE, NAME_MARK.encode()])
    assert not any(found.values()), found


def test_an_unchanged_file_reuses_its_chunks_without_being_read(node, tmp_path) -> None:
    device_holder()
    source = tmp_path / "src"
    source.mkdir()
    same = source / "same.bin"
    same.write_bytes(os.urandom(300_000))
    grows = source / "grows.txt"
    grows.write_bytes(b"first\n" * 1000)
    first = snapshot_of(run_backup(source))
    before = {f.path: f for f in rows(FileEntry, snapshot=first.pk)}
    # Same size and mtime but other bytes: a backup that read it would record new chunks.
    st = same.stat()
    same.write_bytes(os.urandom(300_000))
    os.utime(same, ns=(st.st_atime_ns, st.st_mtime_ns))
    grows.write_bytes(b"second\n" * 2000)
    job = run_backup(source)
    second = snapshot_of(job)
    after = {f.path: f for f in rows(FileEntry, snapshot=second.pk)}
    assert after["same.bin"].chunks == before["same.bin"].chunks
    assert after["grows.txt"].chunks != before["grows.txt"].chunks
    assert 0 < second.new_bytes <= 14_000
    assert job.files_done == 2


def test_the_walk_keeps_links_and_folders_and_reports_what_it_skips(node, tmp_path) -> None:
    device_holder()
    source = tmp_path / "src"
    (source / "empty").mkdir(parents=True)
    (source / "a.txt").write_text("hello")
    outside = tmp_path / "outside.txt"
    outside.write_text("never read through a link")
    os.symlink(outside, source / "out")
    os.mkfifo(source / "pipe")
    job = run_backup(source)
    assert job.state == Job.State.DONE
    snap = snapshot_of(job)
    files = {f.path: f for f in rows(FileEntry, snapshot=snap.pk)}
    assert set(files) == {"empty", "a.txt", "out"}
    assert files["out"].kind == FileEntry.Kind.LINK
    assert files["out"].target == str(outside)
    assert files["empty"].kind == FileEntry.Kind.DIR
    assert "1 socket, device or pipe was skipped" in snap.problem
    assert snap.problem in job.problem
    assert (snap.files, snap.dirs) == (1, 1)


def test_an_unreadable_file_is_reported_and_the_rest_backed_up(node, tmp_path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    device_holder()
    source = tmp_path / "src"
    source.mkdir()
    (source / "ok.txt").write_text("fine")
    locked = source / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    try:
        job = run_backup(source)
    finally:
        locked.chmod(0o600)
    assert job.state == Job.State.DONE
    snap = snapshot_of(job)
    assert [f.path for f in rows(FileEntry, snapshot=snap.pk)] == ["ok.txt"]
    assert "locked.txt: it could not be read" in snap.problem


def test_the_manifest_is_written_in_few_ops(node, tmp_path) -> None:
    device_holder()
    source = tmp_path / "src"
    source.mkdir()
    for i in range(250):
        (source / f"f{i:03}.txt").write_text(f"file {i}\n" * (i + 1))
    thread = space.storage_ensure()
    from apps.core.threads.registry import thread_database

    start = log_size(thread_database(thread.thread))
    job = run_backup(source)
    assert job.state == Job.State.DONE
    ops = log_size(thread_database(thread.thread)) - start
    # 250 file rows, as many chunks and shares: 750 rows in a handful of ops, not one each.
    assert len(rows(FileEntry, snapshot=job.snapshot)) == 250
    assert ops <= 8, ops


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("", "Say which folder"),
        ("relative/path", "full path"),
        ("/no/such/folder/here", "There is no folder"),
    ],
)
def test_a_bad_source_is_refused_in_words(node, given, words) -> None:
    with pytest.raises(StorageError) as caught:
        backup.backup_start(path=given)
    assert words in caught.value.words
    assert not Job.objects.exists()


def test_a_file_or_the_nodes_own_data_is_refused(node, data_dir, tmp_path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(StorageError, match="is a file, not a folder"):
        backup.backup_start(path=str(a_file))
    (data_dir / "sub").mkdir()
    for inside in (data_dir, data_dir / "sub"):
        with pytest.raises(StorageError) as caught:
            backup.backup_start(path=str(inside))
        assert caught.value.words == walk.DATA_DIR_WORDS


def test_a_second_backup_of_a_folder_waits_for_the_first(node, tmp_path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    backup.backup_start(path=str(source))
    with pytest.raises(StorageError) as caught:
        backup.backup_start(path=str(source) + "/")
    assert caught.value.code == "conflict"


def test_a_folder_gone_before_its_job_ran_fails_in_words(node, tmp_path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    job = backup.backup_start(path=str(source))
    source.rmdir()
    jobs.job_run(job)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "no longer there" in job.problem


def test_a_job_a_stopped_node_left_running_fails_on_start(node, tmp_path) -> None:
    job = Job.objects.create(kind=Job.Kind.BACKUP, source=str(tmp_path), state=Job.State.RUNNING)
    assert jobs.stale_fail() == 1
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.problem == "The node stopped during this backup; start it again."
    view = jobs.job_view(job)
    assert view["words"].startswith("Backup failed: The node stopped")


def test_queued_jobs_run_oldest_first_and_once(node, tmp_path) -> None:
    device_holder()
    made = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "x").write_text(name)
        made.append(backup.backup_start(path=str(folder)))
        time.sleep(0.01)
    assert jobs.run_queued() == 2
    done = sorted(Job.objects.all(), key=lambda j: j.pk)
    assert [j.state for j in done] == [Job.State.DONE, Job.State.DONE]
    assert jobs.run_queued() == 0
    jobs.job_run(made[0])  # a job already run is not run again
    assert len(rows(Snapshot)) == 2
    assert jobs.job_view(done[0])["percent"] == 100


def test_a_job_with_every_byte_read_but_not_yet_saved_does_not_show_a_full_bar(node) -> None:
    # Found by CI: the page showed a full bar beside "running" while the snapshot was committed.
    job = Job.objects.create(
        kind=Job.Kind.BACKUP,
        state=Job.State.RUNNING,
        files_total=3,
        files_done=3,
        bytes_total=1000,
        bytes_done=1000,
    )
    view = jobs.job_view(job)
    assert view["percent"] == 99
    assert view["words"] == "Backup finishing: all 3 files read, saving the record of them."
    job.state = Job.State.DONE
    assert jobs.job_view(job)["percent"] == 100


def test_a_backup_that_breaks_is_failed_in_words_and_keeps_what_it_placed(
    node, tmp_path, monkeypatch
) -> None:
    device_holder()
    source = tmp_path / "src"
    source.mkdir()
    for i in range(6):
        (source / f"f{i}.bin").write_bytes(os.urandom(120_000))
    monkeypatch.setattr(backup, "PUT_CHUNKS", 2)  # shares go out two chunks at a time
    fifth = (source / "f4.bin").read_bytes()  # each file is one chunk
    real = engine.pack

    def breaks_on_the_fifth(plain, **kwargs):  # a fault half way, injected
        # By content, not by call order: the packing threads take chunks in any order.
        if plain == fifth:
            raise RuntimeError("injected")
        return real(plain, **kwargs)

    monkeypatch.setattr(engine, "pack", breaks_on_the_fifth)
    job = run_backup(source)
    assert job.state == Job.State.FAILED
    assert job.problem == jobs.UNEXPECTED[Job.Kind.BACKUP]
    snap = snapshot_of(job)
    assert snap.state == Snapshot.State.FAILED
    assert snap.problem == job.problem
    kept = rows(Chunk)
    assert len(kept) == 4  # two batches of two went out and are recorded
    monkeypatch.setattr(engine, "pack", real)
    again = run_backup(source)
    assert again.state == Job.State.DONE, again.problem
    # The next backup dedups against what the failed one placed.
    assert snapshot_of(again).new_bytes == 2 * 120_000
    assert len(rows(Chunk)) == 6


def test_a_backup_hashes_each_share_once(node, data_dir, tmp_path, monkeypatch) -> None:
    # The packer names each share; putting it on this node's own store and checking what the
    # holder kept use that name instead of hashing the bytes again (they were hashed 3 times).
    device_holder()
    made: Counter[str] = Counter()
    real = keys.share_digest

    def counted(data: bytes) -> bytes:
        digest = real(data)
        made[digest.hex()] += 1
        return digest

    monkeypatch.setattr(keys, "share_digest", counted)
    tree = tree_make(tmp_path / "src", size=3 << 20)
    job = run_backup(tree.root)
    assert job.state == Job.State.DONE, job.problem
    shares = rows(Share)
    assert shares
    assert all(s.state == Share.State.PLACED for s in shares)
    assert {s.digest: made[s.digest] for s in shares} == {s.digest: 1 for s in shares}
