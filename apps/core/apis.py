"""The node's own API endpoints (thread endpoints come with the thread services)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.node_addresses import http_text, running_config
from apps.core.selectors import node_info


class NodeOutputSerializer(serializers.Serializer):
    peer_id = serializers.CharField(help_text="The node's libp2p peer id (from its device key).")
    version = serializers.CharField(help_text="The node software version.")
    data_dir_free_bytes = serializers.IntegerField(
        help_text="Free space on the disk that holds the data directory, in bytes."
    )
    http = serializers.CharField(
        help_text="Where the web UI and this API listen, host:port (the port really bound)."
    )
    p2p_listen = serializers.CharField(
        help_text="The p2p listen multiaddr (with the port really bound once the host runs)."
    )


class NodeApi(APIView):
    """This node's identity and health. Owner only."""

    @extend_schema(responses=NodeOutputSerializer, operation_id="node_retrieve")
    def get(self, request: Request) -> Response:
        info = node_info()
        config = running_config()
        return Response(
            NodeOutputSerializer(
                {
                    "peer_id": info.peer_id,
                    "version": info.version,
                    "data_dir_free_bytes": info.data_dir_free_bytes,
                    "http": http_text(config.http),
                    "p2p_listen": config.p2p_listen,
                }
            ).data
        )
