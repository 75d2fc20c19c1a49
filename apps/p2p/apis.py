"""``GET /api/v1/network/``: the p2p node's state (peers, connections, per-thread sync state)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.p2p import client

STATUS_WAIT = 5.0

_thread_sync = inline_serializer(
    "ThreadSync",
    {
        "thread": serializers.CharField(help_text="Thread id, hex."),
        "ops": serializers.IntegerField(help_text="Ops in this node's log."),
        "behind": serializers.IntegerField(
            help_text="Ops the most advanced member device is known to have that this node "
            "lacks (0: in sync as far as this node knows)."
        ),
        "connected_peers": serializers.IntegerField(),
        "peers": serializers.ListField(child=serializers.DictField()),
    },
)


class NetworkApi(APIView):
    """Whether the p2p host runs, its addresses, its peers and how far each thread is synced."""

    @extend_schema(
        operation_id="network_retrieve",
        responses=inline_serializer(
            "NetworkStatus",
            {
                "running": serializers.BooleanField(),
                "mode": serializers.CharField(),
                "peer_id": serializers.CharField(allow_null=True),
                "addresses": serializers.ListField(child=serializers.CharField(), required=False),
                "connections": serializers.ListField(child=serializers.CharField(), required=False),
                "threads": serializers.ListField(child=_thread_sync, required=False),
                "detail": serializers.CharField(required=False),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        status = client.status(timeout=STATUS_WAIT)
        if status is None:
            return Response({"running": False, "detail": "The p2p worker does not answer."})
        return Response(status)
