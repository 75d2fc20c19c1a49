"""The checklist API (owner only, like the rest): a thread's items, and what this member does
with them. Errors are ``{"error": code, "detail": message}``: 404 for an unknown thread or
item, 400 for bad input, 403 when the thread's policy does not let this member do it (a reader,
a member closing a list), 409 when the checklist is not enabled in the thread (``not_enabled``)
or its rules refuse the write (``refused``: someone else holds the item, the list is closed).

Every write answers with the ``write`` it made (its op and state): a success means this node
signed, stored and accepted it; the thread can still refuse it (``WRITES_TAKEN``), and then the
item's ``refused`` lists it with the reason."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.checklist import selectors, services
from apps.checklist.models import DEFAULT_LIST, MAX_LIST, MAX_TEXT
from apps.checklist.policy import APPROVAL, ITEM
from apps.checklist.refusals import WHAT, refused_writes
from apps.core.models import Thread
from apps.core.threads import writes
from apps.core.threads.app_kit import AppFailed, api_call, api_thread
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.write_apis import WRITES_TAKEN, WriteRefOutput

ChecklistFailed = AppFailed
_call, _thread = api_call, api_thread


class RefusedOutput(serializers.Serializer):
    op = serializers.CharField(help_text="The write's op hash: its id under writes/.")
    at = serializers.DateTimeField(help_text="When it was written.")
    what = serializers.ChoiceField(list(WHAT), help_text="What the write did.")
    reason = serializers.CharField(help_text="Why the thread refused it, in plain words.")


class RefusedWithItemOutput(RefusedOutput):
    item = serializers.CharField(allow_null=True, help_text="The item it was about.")
    text = serializers.CharField(
        help_text="The text written (an item added or edited), or the list closed."
    )


class ItemOutput(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField()
    list = serializers.CharField(help_text="The list it is on.")
    claimed_by = serializers.CharField(help_text="The claimer's member key (hex), or empty.")
    claimed_by_name = serializers.CharField(help_text="The claimer as this node names them.")
    done = serializers.BooleanField()
    added_by = serializers.CharField(help_text="The member who added it (hex), from its id.")
    approvals = serializers.IntegerField(help_text="Admins whose approvals match it as it stands.")
    approved = serializers.BooleanField(help_text="Two admins approved it as it stands.")
    state = serializers.CharField(
        help_text=f"{selectors.OPEN}, {selectors.CLAIMED}, {selectors.DONE} or "
        f"{selectors.APPROVED} (approved outranks done, done outranks claimed)."
    )
    closed = serializers.BooleanField(help_text="Its list is closed: nobody changes it any more.")
    refused = RefusedOutput(
        many=True, help_text="This node's writes of this item that the thread refused."
    )


class ItemWrittenOutput(ItemOutput):
    write = WriteRefOutput(allow_null=True, help_text="The write this request made, if any.")


class ItemInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_TEXT)
    list = serializers.CharField(max_length=MAX_LIST, required=False, default=DEFAULT_LIST)


class ItemEditInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_TEXT)


class CloseInput(serializers.Serializer):
    list = serializers.CharField(max_length=MAX_LIST)
    at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Close it at this time (this node writes the close then); now if absent.",
    )


class CloseOutput(serializers.Serializer):
    list = serializers.CharField()
    closed = serializers.BooleanField()
    planned_at = serializers.DateTimeField(allow_null=True)


def _head(thread: Thread) -> int:
    """Where this node's chain stands before a request writes."""
    if thread.state != Thread.State.ACTIVE:
        return 0
    return writes.writes_head(thread_database(thread.thread))


def _write_ref(thread: Thread, head: int, table: str, pk: str | None = None) -> dict | None:
    if thread.state != Thread.State.ACTIVE:
        return None
    found = writes.write_of_row(thread_database(thread.thread), table=table, pk=pk, after=head)
    return None if found is None or found.seq <= head else WriteRefOutput(found).data


def _item(thread: Thread, item_id: str) -> dict:
    found = selectors.item(thread, item_id)
    if found is None:
        raise ChecklistFailed(ThreadServiceError("not_found", "no such item in this checklist"))
    return dict(ItemOutput(found).data)


def _written(thread: Thread, service, *, table: str = ITEM, **kwargs) -> dict:
    """Run a service that writes an item; answer with the item and the write it made."""
    head = _head(thread)
    item = _call(service, thread=thread, **kwargs)
    body = _item(thread, item.id.hex)
    body["write"] = _write_ref(thread, head, table, item.id.hex if table == ITEM else None)
    return body


class ChecklistApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("list", str, description="Only the items of this list.")],
        responses=ItemOutput(many=True),
        operation_id="checklist_list",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        """The thread's checklist items, by list and then in the order they were added."""
        thread = _thread(thread_id)
        services.closes_due(thread=thread)  # a planned close whose task was lost
        found = selectors.items(thread)
        only = request.query_params.get("list")
        if only is not None:
            found = [item for item in found if item.list == only]
        return Response(ItemOutput(found, many=True).data)

    @extend_schema(
        request=ItemInput,
        responses={201: ItemWrittenOutput},
        operation_id="checklist_add",
        description="Add an item (unclaimed, not done). " + WRITES_TAKEN,
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        data = ItemInput(data=request.data)
        data.is_valid(raise_exception=True)
        body = _written(
            thread,
            services.item_add,
            text=data.validated_data["text"],
            list_name=data.validated_data["list"],
        )
        return Response(body, status=status.HTTP_201_CREATED)


class DeletedOutput(serializers.Serializer):
    write = WriteRefOutput(allow_null=True)


class ItemApi(APIView):
    @extend_schema(responses=ItemOutput, operation_id="checklist_item")
    def get(self, request: Request, thread_id: str, item_id: str) -> Response:
        return Response(_item(_thread(thread_id), item_id))

    @extend_schema(
        request=ItemEditInput,
        responses=ItemWrittenOutput,
        operation_id="checklist_edit",
        description="Change an item's text (who added it, or an admin). " + WRITES_TAKEN,
    )
    def patch(self, request: Request, thread_id: str, item_id: str) -> Response:
        thread = _thread(thread_id)
        data = ItemEditInput(data=request.data)
        data.is_valid(raise_exception=True)
        text = data.validated_data["text"]
        return Response(_written(thread, services.item_edit, item_id=item_id, text=text))

    @extend_schema(
        responses=DeletedOutput,
        operation_id="checklist_delete",
        description="Delete an item (who added it, or an admin). " + WRITES_TAKEN,
    )
    def delete(self, request: Request, thread_id: str, item_id: str) -> Response:
        thread = _thread(thread_id)
        head = _head(thread)
        _call(services.item_delete, thread=thread, item_id=item_id)
        return Response({"write": _write_ref(thread, head, ITEM)})


def _action(service, operation_id: str, description: str, table: str = ITEM, **fixed):
    """The API view of one thing a member does with an item (claim, done, approve, ...)."""

    class ItemActionApi(APIView):
        @extend_schema(
            request=None,
            responses=ItemWrittenOutput,
            operation_id=operation_id,
            description=description + " " + WRITES_TAKEN,
        )
        def post(self, request: Request, thread_id: str, item_id: str) -> Response:
            thread = _thread(thread_id)
            return Response(_written(thread, service, table=table, item_id=item_id, **fixed))

    ItemActionApi.__name__ = ItemActionApi.__qualname__ = f"{operation_id.title()}Api"
    return ItemActionApi


ClaimApi = _action(
    services.item_claim,
    "checklist_claim",
    "Claim an item for this member: refused (409) while someone else holds it.",
)
UnclaimApi = _action(
    services.item_unclaim,
    "checklist_unclaim",
    "Give an item back (its claimer, or an admin).",
)
DoneApi = _action(
    services.item_done,
    "checklist_done",
    "Mark an item done (its claimer, or an admin; an unclaimed item is claimed with it).",
)
UndoneApi = _action(
    services.item_done,
    "checklist_undone",
    "Mark an item not done (its claimer, or an admin).",
    done=False,
)
ApproveApi = _action(
    services.item_approve,
    "checklist_approve",
    "Approve an item as it stands (admins): it counts as approved while two admins' approvals "
    "match it; any change to its text, claimer or done makes them stop counting.",
    table=APPROVAL,
)


class CloseApi(APIView):
    @extend_schema(
        request=CloseInput,
        responses={201: CloseOutput},
        operation_id="checklist_close",
        description="Close a list now, or plan its close (owner and admins): every replica "
        "refuses the changes to its items that the closer had not seen. A planned close is "
        "written by this node at that time. " + WRITES_TAKEN,
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        data = CloseInput(data=request.data)
        data.is_valid(raise_exception=True)
        name, at = data.validated_data["list"], data.validated_data["at"]
        if at is None:
            _call(services.list_close, thread=thread, list_name=name)
            plan = None
        else:
            plan = _call(services.list_close_plan, thread=thread, list_name=name, at=at)
        body = {
            "list": " ".join(name.split()),
            "closed": plan is None,
            "planned_at": plan and plan.at,
        }
        return Response(CloseOutput(body).data, status=status.HTTP_201_CREATED)


class RefusedApi(APIView):
    @extend_schema(responses=RefusedWithItemOutput(many=True), operation_id="checklist_refused")
    def get(self, request: Request, thread_id: str) -> Response:
        """This node's checklist writes the thread refused (items never added included)."""
        thread = _thread(thread_id)
        return Response(RefusedWithItemOutput(refused_writes(thread), many=True).data)
