"""The node's own API endpoints (thread endpoints come with the thread services)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.selectors import node_info


class NodeOutputSerializer(serializers.Serializer):
    peer_id = serializers.CharField(help_text="The node's libp2p peer id (from its device key).")
    version = serializers.CharField(help_text="The node software version.")
    data_dir_free_bytes = serializers.IntegerField(
        help_text="Free space on the disk that holds the data directory, in bytes."
    )


class NodeApi(APIView):
    """This node's identity and health. Owner only."""

    @extend_schema(responses=NodeOutputSerializer, operation_id="node_retrieve")
    def get(self, request: Request) -> Response:
        info = node_info()
        return Response(
            NodeOutputSerializer(
                {
                    "peer_id": info.peer_id,
                    "version": info.version,
                    "data_dir_free_bytes": info.data_dir_free_bytes,
                }
            ).data
        )
