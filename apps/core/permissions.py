"""API permissions: the node's data belongs to its owner alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

from apps.core.selectors import is_node_owner

if TYPE_CHECKING:  # rest_framework.views imports this module through the DRF settings
    from rest_framework.request import Request
    from rest_framework.views import APIView


class IsNodeOwner(BasePermission):
    message = "Only the node's owner may use this API."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_node_owner(request.user)
