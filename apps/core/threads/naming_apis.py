"""The names API (owner only; ADR 16): the display name, this member's name in one thread, and
the name only this node gives another member. Member listings carry each member's ``name``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.thread.payloads import MAX_MEMBER_NAME
from apps.core.threads import naming
from apps.core.threads.apis import _call, _thread
from apps.core.threads.names import thread_names

_NAME_HELP = (
    f"1 to {MAX_MEMBER_NAME} characters after spaces are tidied; no control characters, line "
    "breaks or text-direction marks."
)


class NameInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True, trim_whitespace=False)


class DisplayNameOutput(serializers.Serializer):
    name = serializers.CharField(help_text="The name this person goes by in every thread.")


class DisplayNameSetOutput(DisplayNameOutput):
    not_written = serializers.ListField(
        child=serializers.CharField(),
        help_text="Threads (ids) it could not be written into now; the next change retries.",
    )


class DisplayNameApi(APIView):
    """The node's display name: written into every active thread that has no name of its own
    for this member."""

    @extend_schema(responses=DisplayNameOutput, operation_id="node_name_retrieve")
    def get(self, request: Request) -> Response:
        return Response({"name": naming.display_name()})

    @extend_schema(
        request=NameInput,
        responses=DisplayNameSetOutput,
        operation_id="node_name_set",
        description=_NAME_HELP,
    )
    def put(self, request: Request) -> Response:
        data = NameInput(data=request.data)
        data.is_valid(raise_exception=True)
        failed = _call(naming.display_name_set, name=data.validated_data["name"])
        return Response({"name": naming.display_name(), "not_written": [t.id for t in failed]})


class MyNameOutput(serializers.Serializer):
    name = serializers.CharField(help_text="The name the thread's members see for you.")
    own = serializers.CharField(help_text="This thread's own name for you; empty: the usual one.")


def _my_name(thread) -> dict:
    return {"name": naming.name_in(thread), "own": thread.my_name}


class MyNameApi(APIView):
    """This member's name in one thread: its own, or (empty) the display name."""

    @extend_schema(responses=MyNameOutput, operation_id="thread_my_name_retrieve")
    def get(self, request: Request, thread_id: str) -> Response:
        return Response(_my_name(_thread(thread_id)))

    @extend_schema(
        request=NameInput,
        responses=MyNameOutput,
        operation_id="thread_my_name_set",
        description=_NAME_HELP + " Empty: use the display name again.",
    )
    def put(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        data = NameInput(data=request.data)
        data.is_valid(raise_exception=True)
        _call(naming.my_name_set, thread=thread, name=data.validated_data["name"])
        return Response(_my_name(thread))


class ContactNameOutput(serializers.Serializer):
    member = serializers.CharField(help_text="The member key, hex.")
    name = serializers.CharField(help_text="What this node shows for the member.")
    own_name = serializers.CharField(help_text="The name the member gave itself (may be empty).")
    contact_name = serializers.CharField(help_text="The name only this node gives it.")


class ContactNameApi(APIView):
    """The name only this node gives another member of a thread (it never leaves the node)."""

    def _answer(self, thread, member_id: str) -> Response:
        person = thread_names(thread).person(member_id.lower())
        return Response(
            {
                "member": person.member_id,
                "name": person.name,
                "own_name": person.own_name,
                "contact_name": person.contact_name,
            }
        )

    @extend_schema(
        request=NameInput,
        responses=ContactNameOutput,
        operation_id="thread_member_contact_name_set",
        description=_NAME_HELP + " Empty: forget it.",
    )
    def put(self, request: Request, thread_id: str, member_id: str) -> Response:
        thread = _thread(thread_id)
        data = NameInput(data=request.data)
        data.is_valid(raise_exception=True)
        _call(
            naming.contact_name_set,
            thread=thread,
            member_id=member_id,
            name=data.validated_data["name"],
        )
        return self._answer(thread, member_id)

    @extend_schema(responses=ContactNameOutput, operation_id="thread_member_contact_name_clear")
    def delete(self, request: Request, thread_id: str, member_id: str) -> Response:
        thread = _thread(thread_id)
        _call(naming.contact_name_set, thread=thread, member_id=member_id, name="")
        return self._answer(thread, member_id)
