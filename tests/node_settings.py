"""Settings of the node processes that integration tests and benchmarks start: a normal node
(``dev``) plus the test replicated app and a small API to write and read its notes."""

from sereus_web.settings.dev import *  # noqa: F403
from sereus_web.settings.dev import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.replicated_app"]
ROOT_URLCONF = "tests.node_urls"
