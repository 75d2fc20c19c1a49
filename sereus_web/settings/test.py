"""The test suite: a throwaway data dir per run, fast password hashing, the test client's host."""

import atexit
import os
import shutil
import tempfile

# Each test run gets its own data dir unless the caller chose one (node processes started by
# integration tests get theirs through SEREUS_DATA_DIR). Made only when needed, and removed
# when the process ends: a run starts many processes, and /tmp filled with their dirs.
if "SEREUS_DATA_DIR" not in os.environ:
    _run_dir = tempfile.mkdtemp(prefix="sereus-test-")
    os.environ["SEREUS_DATA_DIR"] = _run_dir
    atexit.register(shutil.rmtree, _run_dir, ignore_errors=True)

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, DATABASES, INSTALLED_APPS

ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Argon2id cost for sealing the master secret: the real cost is measured in bench/, tests only
# need the same code path.
SEREUS_PWHASH_COST = "interactive"

# A replicated app that exists only for the tests of the thread database backend.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.replicated_app"]

# The test database is a file, not Django's shared-cache in-memory default: tests that run the
# p2p worker read it from the trio thread while the test writes, and shared-cache SQLite answers
# that with an immediate "database table is locked" instead of waiting as WAL does.
DATABASES["default"].setdefault("TEST", {})
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"]["NAME"] = os.path.join(
        os.environ["SEREUS_DATA_DIR"], "test.sqlite3"
    )
