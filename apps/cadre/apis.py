"""The devices API (issue 17 §5), owner-only like the rest: this person's devices, a device link
to add one, joining another device with its link (on the new node), removing a device, and
how far a join or a recovery from the phrase is. On a mirror, what it keeps.

Errors are ``{"error": code, "detail": words}``: 400 for a link that is not one or a field out
of shape, 403 where this node may not do it, 404 for a device the party does not have, 409 for
a join that cannot start here (this node has threads of its own, a join is under way), 503 when
the node cannot do it now (its secret is locked, it is not running)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.cadre.control import CadreError
from apps.cadre.forms import LINK_MAX, link_check
from apps.cadre.models import LABEL
from apps.core.threads.app_kit import AppFailed
from apps.core.threads.services import ThreadServiceError

T = TypeVar("T")
TAG = ["devices"]


def failed(exc: CadreError) -> AppFailed:
    """A cadre refusal as the API answers it (the same codes and statuses as the threads')."""
    return AppFailed(ThreadServiceError(exc.code, exc.words))


def call(fn: Callable[..., T], **kwargs: Any) -> T:
    try:
        return fn(**kwargs)
    except CadreError as exc:
        raise failed(exc) from exc


# -- output ---------------------------------------------------------------------------------------


class DeviceThreadOutput(serializers.Serializer):
    thread = serializers.CharField(source="thread_id", help_text="The thread id (hex).")
    name = serializers.CharField()
    certified = serializers.BooleanField(help_text="Whether the device is certified there.")
    behind = serializers.IntegerField(
        allow_null=True,
        help_text="Ops this node holds that the device has not said it holds (null: not known).",
    )


class DeviceOutput(serializers.Serializer):
    device = serializers.CharField(help_text="The device's public key (64 hex characters).")
    kind = serializers.CharField(help_text="full, mirror or standby (the recovery key).")
    kind_words = serializers.CharField(help_text="What it is, in words.")
    label = serializers.CharField(allow_blank=True)
    peer_id = serializers.CharField(allow_blank=True)
    state = serializers.CharField(help_text="active, removed or spent (a used recovery key).")
    this_node = serializers.BooleanField(help_text="The device answering this request.")
    removable = serializers.BooleanField(help_text="Whether this node can remove it.")
    last_seen = serializers.DateTimeField(allow_null=True)
    threads = DeviceThreadOutput(many=True)


class DeviceProgressThreadOutput(serializers.Serializer):
    thread = serializers.CharField(help_text="The thread id (hex).")
    name = serializers.CharField(allow_blank=True)
    app = serializers.CharField(allow_blank=True)
    control = serializers.BooleanField(help_text="The party's own device list.")
    ops_fetched = serializers.IntegerField()
    ops_total = serializers.IntegerField(allow_null=True)
    state = serializers.CharField(help_text="waiting, fetching, done or failed.")
    problem = serializers.CharField(allow_blank=True)


class DeviceProgressOutput(serializers.Serializer):
    state = serializers.CharField(help_text="none when there was none; else as the words say.")
    words = serializers.CharField(allow_blank=True, help_text="The state in words.")
    problem = serializers.CharField(allow_blank=True, help_text="Why it stopped, in words.")
    running = serializers.BooleanField(help_text="Whether the node is still at it.")
    threads = DeviceProgressThreadOutput(many=True, source="progress")


# -- input ----------------------------------------------------------------------------------------


class DeviceLinkInput(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["full", "mirror"],
        default="full",
        help_text="full: another device of this person (it gets the secret); mirror: keeps "
        "encrypted copies only.",
    )
    label = serializers.CharField(max_length=LABEL, required=False, default="", allow_blank=True)


class DeviceLinkOutput(serializers.Serializer):
    link = serializers.CharField(help_text="The device link (sereus:device/…): single use.")
    expires_at = serializers.DateTimeField()


class DeviceJoinInput(serializers.Serializer):
    link = serializers.CharField(max_length=LINK_MAX)

    def validate_link(self, value: str) -> str:
        from django import forms

        try:
            return link_check(value)
        except forms.ValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc


# -- views ----------------------------------------------------------------------------------------


class DeviceListApi(APIView):
    @extend_schema(responses=DeviceOutput(many=True), operation_id="devices_list", tags=TAG)
    def get(self, request: Request) -> Response:
        """This person's devices: this one, the others, mirrors and the recovery key (removed
        ones too, with their state)."""
        from apps.cadre.selectors import device_list

        return Response(DeviceOutput(call(device_list, include_gone=True), many=True).data)


class DeviceLinkApi(APIView):
    @extend_schema(
        request=DeviceLinkInput,
        responses={201: DeviceLinkOutput},
        operation_id="devices_link_create",
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        """A device link: open it on the new node (its claim page, ``POST /api/v1/devices/join/``
        there, or ``manage.py node_join``). It works once, for ten minutes; whoever holds a
        ``full`` link becomes this person, so pass it only to your own device."""
        from apps.cadre.link import link_create

        data = DeviceLinkInput(data=request.data)
        data.is_valid(raise_exception=True)
        made = call(link_create, **data.validated_data)
        response = Response(DeviceLinkOutput(made).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class DeviceJoinApi(APIView):
    @extend_schema(
        request=DeviceJoinInput,
        responses={202: DeviceProgressOutput},
        operation_id="devices_join",
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        """On the new node: join the person's other device with its link. The node does it in
        the background (202); ``GET`` here says how far it is."""
        from apps.cadre.link import join_start

        data = DeviceJoinInput(data=request.data)
        data.is_valid(raise_exception=True)
        call(join_start, link=data.validated_data["link"])
        return Response(_progress(_join_status()), status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=DeviceProgressOutput, operation_id="devices_join_status", tags=TAG)
    def get(self, request: Request) -> Response:
        """How far this node's join is, per thread."""
        return Response(_progress(_join_status()))


def _progress(found: dict[str, Any]) -> dict[str, Any]:
    return DeviceProgressOutput(found).data


def _join_status() -> dict[str, Any]:
    from apps.cadre.selectors import join_status

    return call(join_status)


class RestoreApi(APIView):
    @extend_schema(responses=DeviceProgressOutput, operation_id="devices_restore_status", tags=TAG)
    def get(self, request: Request) -> Response:
        """How far this node's recovery from the phrase is, per thread."""
        from apps.cadre.selectors import restore_status

        return Response(_progress(call(restore_status)))


class DeviceDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="devices_remove", tags=TAG)
    def delete(self, request: Request, device: str) -> Response:
        """Remove a device: every thread revokes it and rotates its keys, so nothing written
        from now on reaches it. Not this device itself, nor the recovery key."""
        from apps.cadre.devices import device_remove

        call(device_remove, device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MirrorThreadOutput(serializers.Serializer):
    thread = serializers.CharField(help_text="The thread id (hex).")
    party = serializers.CharField(help_text="The party's public key (hex).")
    control = serializers.BooleanField(help_text="The party's own device list.")
    ops = serializers.IntegerField(help_text="Ops kept.")
    last_received = serializers.DateTimeField(allow_null=True)
    roster = serializers.IntegerField(help_text="Devices that may fetch it.")


class MirrorStatusApi(APIView):
    @extend_schema(responses=MirrorThreadOutput(many=True), operation_id="mirror_status", tags=TAG)
    def get(self, request: Request) -> Response:
        """On a mirror: the threads it keeps, whose, how many ops and when it last got one."""
        if not settings.SEREUS.mirror:
            raise failed(CadreError("not_found", "This node is not a mirror."))
        from apps.cadre.mirror_store import status as mirror_status

        return Response(MirrorThreadOutput(mirror_status(), many=True).data)
