"""The file-system side of backups: the tree walk, and the checks of the folders and paths a
person names (the folder to back up, the folder to restore into, a manifest's paths). No rows.

The walk never follows a symbolic link (a link is recorded with its target), keeps folders,
skips sockets, devices and fifos (counted), and tolerates what vanishes or cannot be read while
it runs: each such place becomes a problem in words and the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings

from apps.storage.space import StorageError

FILE, DIR, LINK = "file", "dir", "link"
DATA_DIR_WORDS = "That folder holds this node's own data; back up another."
PROBLEMS_SHOWN = 20  # problems listed by name; the rest are counted


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the source, "/"-separated
    kind: str  # FILE, DIR or LINK
    mode: int  # permission bits
    mtime_ns: int
    size: int = 0
    target: str = ""  # a link's target


@dataclass
class Walked:
    """What a walk found besides its entries."""

    special: int = 0  # sockets, devices, fifos skipped
    problems: list[str] = field(default_factory=list)

    def problem(self, words: str) -> None:
        self.problems.append(words)


def problems_words(problems: list[str], special: int = 0) -> str:
    """The problems of a walk or a restore in a few lines, the first ``PROBLEMS_SHOWN`` by name."""
    lines = problems[:PROBLEMS_SHOWN]
    if len(problems) > PROBLEMS_SHOWN:
        lines.append(f"... and {len(problems) - PROBLEMS_SHOWN} more.")
    if special == 1:
        lines.append("1 socket, device or pipe was skipped (it holds no data to back up).")
    elif special:
        lines.append(f"{special} sockets, devices or pipes were skipped (they hold no data).")
    return "\n".join(lines)


def _text(name: str) -> bool:
    # A name that is not valid UTF-8 on disk comes back with surrogates: it cannot be written
    # into the manifest, and a restore could not name it the same.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in name


def walk(root: Path, walked: Walked, *, skip: tuple[Path, ...] = ()) -> Iterator[Entry]:
    """Every folder, file and link under ``root`` (folders before what they hold, names in
    order), without following links. ``skip``: real paths never entered (the node's data)."""
    skipped = {os.path.realpath(p) for p in skip}
    yield from _walk(root, "", walked, skipped)


def _walk(folder: Path, rel: str, walked: Walked, skipped: set[str]) -> Iterator[Entry]:
    try:
        with os.scandir(folder) as it:
            items = sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        walked.problem(f"{rel or '.'}: the folder vanished while it was backed up.")
        return
    except OSError:
        walked.problem(f"{rel or '.'}: the folder could not be read (no permission?).")
        return
    for item in items:
        path = f"{rel}/{item.name}" if rel else item.name
        if not _text(item.name):
            walked.problem(f"{path!a}: its name is not valid text; skipped.")
            continue
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            walked.problem(f"{path}: it vanished while it was backed up.")
            continue
        except OSError:
            walked.problem(f"{path}: it could not be read (no permission?).")
            continue
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(item.path)
            except OSError:
                walked.problem(f"{path}: the link vanished while it was backed up.")
                continue
            if not _text(target):
                walked.problem(f"{path}: its link target is not valid text; skipped.")
                continue
            yield Entry(path, LINK, mode, st.st_mtime_ns, 0, target)
        elif stat.S_ISDIR(st.st_mode):
            if os.path.realpath(item.path) in skipped:
                continue
            yield Entry(path, DIR, mode, st.st_mtime_ns)
            yield from _walk(Path(item.path), path, walked, skipped)
        elif stat.S_ISREG(st.st_mode):
            yield Entry(path, FILE, mode, st.st_mtime_ns, st.st_size)
        else:
            walked.special += 1


def path_safe(path: str) -> bool:
    """Whether a manifest path may be written under a restore's target: relative, "/"-separated,
    no ``..``, no empty or ``.`` part, no NUL (a manifest is data: a damaged or forged one must
    not write outside the target)."""
    if not path or "\x00" in path or "\\" in path or path.startswith("/"):
        return False
    parts = PurePosixPath(path).parts
    return all(part not in ("", ".", "..") for part in parts) and "/".join(parts) == path


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (resolved) is ``folder`` or under it."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
    except ValueError:
        return False
    return True


# -- the folders a person names -------------------------------------------------------------------


def source_check(path: str) -> Path:
    """The folder to back up, resolved, or StorageError in words."""
    if not path or not path.strip():
        raise StorageError("invalid", "Say which folder to back up.")
    if "\x00" in path:
        raise StorageError("invalid", "That is not a folder's name.")
    given = Path(path.strip()).expanduser()
    if not given.is_absolute():
        raise StorageError("invalid", "Give the folder's full path (starting with /).")
    source = Path(os.path.realpath(given))
    if not source.exists():
        raise StorageError("invalid", f"There is no folder at {given}.")
    if not source.is_dir():
        raise StorageError(
            "invalid", f"{given} is a file, not a folder: back up the folder that holds it."
        )
    if not os.access(source, os.R_OK | os.X_OK):
        raise StorageError("invalid", f"This node cannot read {given}: check its permissions.")
    if inside(source, Path(settings.DATA_DIR)):
        raise StorageError("invalid", DATA_DIR_WORDS)
    return source


def target_check(target: str) -> Path:
    if not target or not target.strip() or "\x00" in target:
        raise StorageError("invalid", "Say which folder to restore into.")
    given = Path(target.strip()).expanduser()
    if not given.is_absolute():
        raise StorageError("invalid", "Give the folder's full path (starting with /).")
    path = Path(os.path.realpath(given))
    if inside(path, Path(settings.DATA_DIR)) or inside(Path(settings.DATA_DIR), path):
        raise StorageError(
            "invalid", "That folder holds this node's own data; restore into another."
        )
    if path.exists():
        if not path.is_dir():
            raise StorageError("invalid", f"{given} is a file; restore into a new folder.")
        if any(path.iterdir()):
            raise StorageError("invalid", "That folder is not empty; restore into a new folder.")
    return path


def paths_check(paths: list[str] | None) -> list[str]:
    out = []
    for path in paths or []:
        clean = path.strip().strip("/")
        if not clean:
            continue
        if not path_safe(clean):
            raise StorageError("invalid", f"{path!r} is not a path inside the backup.")
        out.append(clean)
    return out
