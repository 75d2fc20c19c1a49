"""Template context every page needs: the node's version and whether it still needs a claim."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

import sereus_web


def node(request: HttpRequest) -> dict[str, Any]:
    return {"sereus_version": sereus_web.__version__}
