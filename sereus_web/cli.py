"""Command-line options that must act before Django reads the settings."""

from __future__ import annotations

from collections.abc import MutableMapping


def argv_apply_data_dir(argv: list[str], environ: MutableMapping[str, str]) -> list[str]:
    """Remove ``--data-dir X`` / ``--data-dir=X`` from argv and put X in SEREUS_DATA_DIR."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--data-dir":
            value = next(args, None)
            if value is None:
                raise SystemExit("--data-dir needs a path")
            environ["SEREUS_DATA_DIR"] = value
        elif arg.startswith("--data-dir="):
            environ["SEREUS_DATA_DIR"] = arg.split("=", 1)[1]
        else:
            out.append(arg)
    return out
