#!/usr/bin/env python
"""Django's command-line utility for the Sereus node.

``--data-dir PATH`` is accepted before or after the command name by every command (like
``--settings``): it sets SEREUS_DATA_DIR before the settings are read.
"""

import os
import sys


def main() -> None:
    # Everything the node writes (databases, keys, queues) is for its owner's eyes only.
    os.umask(0o077)
    from sereus_web.cli import argv_apply_data_dir

    sys.argv = argv_apply_data_dir(sys.argv, os.environ)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sereus_web.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
