"""The API of a thread's apps: list them, enable one, disable one (owner only, like the rest of
the threads API)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.threads import thread_apps
from apps.core.threads.apis import _call, _thread


class ThreadAppOutput(serializers.Serializer):
    app = serializers.CharField()
    enabled = serializers.BooleanField()
    primary = serializers.BooleanField(
        help_text="The app the thread was created for: it cannot be disabled."
    )
    installed = serializers.BooleanField(
        help_text="Whether this node has the app (its pages and rules)."
    )


class ThreadAppInput(serializers.Serializer):
    app = serializers.RegexField(r"\A[a-z][a-z0-9_]{0,63}\Z", help_text="The app to enable.")


class ThreadAppListApi(APIView):
    @extend_schema(responses=ThreadAppOutput(many=True), operation_id="thread_apps_list")
    def get(self, request: Request, thread_id: str) -> Response:
        """The thread's apps (enabled first, its own app leading), then the apps this node
        could enable in it."""
        listed = _call(thread_apps.thread_apps_list, thread=_thread(thread_id))
        return Response(ThreadAppOutput(listed, many=True).data)

    @extend_schema(
        request=ThreadAppInput,
        responses={201: ThreadAppOutput},
        operation_id="thread_apps_enable",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        """Enable an app in the thread: a control op every member's node checks (only roles
        that manage the thread may)."""
        thread = _thread(thread_id)
        data = ThreadAppInput(data=request.data)
        data.is_valid(raise_exception=True)
        app = data.validated_data["app"]
        enabled = _call(thread_apps.app_enable, thread=thread, app=app)
        return Response(ThreadAppOutput(enabled).data, status=status.HTTP_201_CREATED)


class ThreadAppDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="thread_apps_disable")
    def delete(self, request: Request, thread_id: str, app: str) -> Response:
        """Disable an app: its rows stay; nobody writes to its tables until it is enabled
        again. The app the thread was created for cannot be disabled."""
        _call(thread_apps.app_disable, thread=_thread(thread_id), app=app)
        return Response(status=status.HTTP_204_NO_CONTENT)
