"""Django admin for threads, their members, invites and devices, for the node's owner.

The rows are this node's index of each thread; every change made here goes through the thread
services and so becomes a signed control op (a refused one is reported and changes nothing).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import segno
from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from apps.core.models import Thread, ThreadDevice, ThreadInvite, ThreadMember
from apps.core.thread.policy import policy_templates
from apps.core.threads import services
from apps.core.threads.registry import thread_database

FAILED = "_sereus_admin_failed"


class ServiceAdminMixin:
    """Run a service in ``save_model``/``delete_model``; on refusal show why and change nothing."""

    def _run(self, request: HttpRequest, action, success: str | None = None) -> bool:
        try:
            action()
        except services.ThreadServiceError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            setattr(request, FAILED, True)
            return False
        if success:
            self.message_user(request, success, messages.SUCCESS)
        return True

    def _failed(self, request: HttpRequest) -> bool:
        return getattr(request, FAILED, False)

    # On refusal: back to the form with the error, without Django's "changed successfully".
    def response_add(self, request, obj, post_url_continue=None):
        if self._failed(request):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if self._failed(request):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def response_delete(self, request, obj_display, obj_id):
        if self._failed(request):
            return HttpResponseRedirect("../../")
        return super().response_delete(request, obj_display, obj_id)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class MemberInline(ReadOnlyInline):
    model = ThreadMember
    fields = ["member_id", "role", "is_me"]


class DeviceInline(ReadOnlyInline):
    model = ThreadDevice
    fields = ["device_id", "member_id", "is_this_node"]


class InviteInline(ReadOnlyInline):
    model = ThreadInvite
    fields = ["invite_id", "label", "role", "status", "uses", "used", "expires_at"]


class ThreadCreateForm(forms.ModelForm):
    app = forms.ChoiceField(choices=())

    class Meta:
        model = Thread
        fields = ["name", "app"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["app"].choices = [(a, a) for a in policy_templates()]


@admin.register(Thread)
class ThreadAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["name", "app", "role", "state", "created_at"]
    list_filter = ["state", "app", "role"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "name", "app", "member_id", "role", "state", "problem", "created_at"]
    inlines = [MemberInline, DeviceInline, InviteInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ThreadCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["name", "app"] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj: Thread, form, change: bool) -> None:
        if change:
            return
        created: dict[str, Thread] = {}

        def create() -> None:
            created["thread"] = services.thread_create(name=obj.name, app=obj.app)

        if self._run(request, create):
            obj.pk = created["thread"].pk
            obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a thread is left (a control op), not deleted


class MemberForm(forms.ModelForm):
    role = forms.ChoiceField(choices=())

    class Meta:
        model = ThreadMember
        fields = ["role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        thread = self.instance.thread
        policy = thread_database(thread.thread).replica().control.state.policy
        self.fields["role"].choices = [
            (r, r) for r in sorted(policy.roles, key=lambda r: -policy.rank(r)) if r != "owner"
        ]


@admin.register(ThreadMember)
class ThreadMemberAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["member_id", "thread", "role", "is_me"]
    list_filter = ["role", "thread"]
    search_fields = ["member_id", "thread__name"]
    form = MemberForm
    readonly_fields = ["thread", "member_id", "is_me"]
    fields = ["thread", "member_id", "is_me", "role"]

    def has_add_permission(self, request) -> bool:
        return False  # members join by invite

    def save_model(self, request, obj: ThreadMember, form, change: bool) -> None:
        self._run(
            request,
            lambda: services.member_set_role(
                thread=obj.thread, member_id=obj.member_id, role=form.cleaned_data["role"]
            ),
        )

    def delete_model(self, request, obj: ThreadMember) -> None:
        self._run(
            request, lambda: services.member_remove(thread=obj.thread, member_id=obj.member_id)
        )

    def delete_queryset(self, request, queryset) -> None:
        for member in queryset:
            self.delete_model(request, member)


class InviteForm(forms.ModelForm):
    expires_in_hours = forms.IntegerField(
        min_value=1, max_value=services.MAX_INVITE_DAYS * 24, initial=24
    )
    uses = forms.IntegerField(
        min_value=1,
        max_value=services.MAX_INVITE_USES,
        required=False,
        initial=1,
        help_text="How many people may join with the link (empty: one).",
    )
    anyone = forms.BooleanField(
        required=False,
        label="Anyone with the link",
        help_text="No cap: anyone who has the link may join until it expires or is revoked.",
    )

    class Meta:
        model = ThreadInvite
        fields = ["thread", "role", "uses", "label"]


@admin.register(ThreadInvite)
class ThreadInviteAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["invite_id", "thread", "label", "role", "status", "uses", "used", "expires_at"]
    list_filter = ["status", "role", "thread"]
    actions = ["revoke"]
    readonly_fields = [
        "thread",
        "invite_id",
        "label",
        "role",
        "status",
        "uses",
        "used",
        "expires_at",
        "link",
        "qr_code",
    ]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = InviteForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["thread", "role", "uses", "anyone", "label", "expires_in_hours"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(description="QR code")
    def qr_code(self, obj: ThreadInvite) -> str:
        if not obj.link:
            return "made by another node"
        svg = segno.make(obj.link, error="m").svg_inline(scale=3, title="Invite QR code")
        return format_html('<div class="qr">{}</div>', mark_safe(svg))  # noqa: S308

    def save_model(self, request, obj: ThreadInvite, form, change: bool) -> None:
        if change:
            return
        created: dict[str, Any] = {}

        def create() -> None:
            created["invite"] = services.invite_create(
                thread=obj.thread,
                role=form.cleaned_data["role"],
                expires_in=timedelta(hours=form.cleaned_data["expires_in_hours"]),
                uses=None if form.cleaned_data["anyone"] else form.cleaned_data["uses"] or 1,
                label=form.cleaned_data["label"],
            )

        if self._run(request, create):
            obj.pk = created["invite"].record.pk
            obj.refresh_from_db()

    @admin.action(description="Revoke the selected invites")
    def revoke(self, request, queryset) -> None:
        for invite in queryset.filter(status="open"):
            self._run(
                request,
                lambda invite=invite: services.invite_revoke(
                    thread=invite.thread, invite_id=invite.invite_id
                ),
                f"Invite {invite.invite_id[:12]} revoked.",
            )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DeviceForm(forms.ModelForm):
    device_proof = forms.CharField(
        max_length=128,
        help_text="That node's proof that it acts for you in this thread: run "
        "`python manage.py device_proof <thread id> <your member id>` on it and paste what it "
        "prints.",
    )

    class Meta:
        model = ThreadDevice
        fields = ["thread", "device_id"]
        help_texts = {"device_id": "The public device key (hex) of another node of yours."}


@admin.register(ThreadDevice)
class ThreadDeviceAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["device_id", "thread", "member_id", "is_this_node"]
    list_filter = ["thread"]
    actions = ["revoke"]
    form = DeviceForm

    def get_readonly_fields(self, request, obj=None):
        return ["thread", "device_id", "member_id", "is_this_node"] if obj is not None else []

    def save_model(self, request, obj: ThreadDevice, form, change: bool) -> None:
        if change:
            return
        if self._run(
            request,
            lambda: services.device_certify(
                thread=obj.thread,
                device_id=obj.device_id,
                device_proof=form.cleaned_data["device_proof"],
            ),
        ):
            obj.pk = ThreadDevice.objects.get(thread=obj.thread, device_id=obj.device_id).pk

    @admin.action(description="Revoke the selected devices")
    def revoke(self, request, queryset) -> None:
        for device in queryset:
            self._run(
                request,
                lambda device=device: services.device_revoke(
                    thread=device.thread, device_id=device.device_id
                ),
                f"Device {device.device_id[:12]} revoked.",
            )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
