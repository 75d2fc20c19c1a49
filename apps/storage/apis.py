"""The storage API (issue 18), owner-only like the rest: start a backup or a restore and follow
its job, the backups and their files (paged) and a file's bytes, the holders and how safe the
backups are, an invite for a friend, a check of every holder now, what to keep and cleaning up;
on a friend's node, the parties it holds for and the room it gives each.

Errors are ``{"error": code, "detail": words}``: 400 invalid, 403 forbidden, 404 not_found,
409 conflict, 503 unavailable or unreachable, 507 full."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.storage import selectors
from apps.storage import serializers as out
from apps.storage.space import StorageError

T = TypeVar("T")
TAG = ["storage"]
STATUS = {
    "invalid": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "refused": 409,
    "unavailable": 503,
    "unreachable": 503,
    "busy": 503,
    "full": 507,
}


class StorageFailed(APIException):
    def __init__(self, error: StorageError) -> None:
        super().__init__(detail=error.words, code=error.code)
        self.status_code = STATUS.get(error.code, 400)
        self.default_code = error.code


def call(fn: Callable[..., T], **kwargs: Any) -> T:
    try:
        return fn(**kwargs)
    except StorageError as exc:
        raise StorageFailed(exc) from exc


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    found = serializer_class(data=data)
    found.is_valid(raise_exception=True)
    return dict(found.validated_data)


def _job(job: Any) -> dict[str, Any]:
    return out.StorageJobOutput(selectors.job_view(job)).data


# -- backups and restores --------------------------------------------------------------------------


class BackupApi(APIView):
    @extend_schema(
        request=out.StorageBackupInput,
        responses={202: out.StorageJobOutput},
        operation_id="storage_backup_start",
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        """Back up a folder of this node: it runs in the background (202); follow the job."""
        from apps.storage.backup import backup_start

        data = _valid(out.StorageBackupInput, request.data)
        job = call(backup_start, path=data["path"], label=data["label"])
        return Response(_job(job), status=status.HTTP_202_ACCEPTED)


class RestoreApi(APIView):
    @extend_schema(
        request=out.StorageRestoreInput,
        responses={202: out.StorageJobOutput},
        operation_id="storage_restore_start",
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        """Restore a backup (or only some of its paths) into an empty folder of this node."""
        from apps.storage.restore import restore_start

        data = _valid(out.StorageRestoreInput, request.data)
        paths = [call(selectors.clean_path, path=p) for p in data.get("paths") or []]
        job = call(
            restore_start, snapshot=data["snapshot"], target=data["target"], paths=paths or None
        )
        return Response(_job(job), status=status.HTTP_202_ACCEPTED)


class JobApi(APIView):
    @extend_schema(responses=out.StorageJobOutput, operation_id="storage_job", tags=TAG)
    def get(self, request: Request, job_id: int) -> Response:
        """How far a backup or restore is."""
        return Response(_job(call(selectors.job_get, job_id=job_id)))


# -- snapshots -------------------------------------------------------------------------------------


PATH = OpenApiParameter("path", OpenApiTypes.STR, description="A folder or file of the backup.")
PAGE = OpenApiParameter("page", OpenApiTypes.INT, description="From 1; 200 entries a page.")


class SnapshotListApi(APIView):
    @extend_schema(
        responses=out.StorageSnapshotOutput(many=True), operation_id="storage_snapshots", tags=TAG
    )
    def get(self, request: Request) -> Response:
        """The party's backups, newest first, from every device of the party."""
        return Response(out.StorageSnapshotOutput(selectors.snapshot_list(), many=True).data)


class SnapshotFilesApi(APIView):
    @extend_schema(
        parameters=[PATH, PAGE],
        responses=out.StorageFilePageOutput,
        operation_id="storage_snapshot_files",
        tags=TAG,
    )
    def get(self, request: Request, snapshot_id: str) -> Response:
        """A folder of a backup: its files and folders, folders first, a page at a time."""
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            raise StorageFailed(StorageError("invalid", "The page is a number from 1.")) from None
        path = request.query_params.get("path", "")
        found = call(selectors.children, snapshot_id=snapshot_id, path=path, page=page)
        entries = [
            {
                "path": e.path,
                "name": selectors.entry_name(e),
                "kind": e.kind,
                "size": e.size,
                "mtime_ns": e.mtime_ns,
                "mode": e.mode,
                "target": e.target,
            }
            for e in found.entries
        ]
        body = {
            "path": found.path,
            "page": page,
            "pages": max(1, math.ceil(found.total / selectors.PAGE)),
            "total": found.total,
            "entries": entries,
        }
        return Response(out.StorageFilePageOutput(body).data)


class SnapshotDownloadApi(APIView):
    @extend_schema(
        parameters=[PATH],
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)},
        operation_id="storage_snapshot_download",
        tags=TAG,
    )
    def get(self, request: Request, snapshot_id: str) -> Any:
        """A file of a backup, its bytes as backed up (checked and decrypted on this node)."""
        from apps.storage.models import FileEntry
        from apps.storage.restore import file_stream
        from apps.storage.views import file_response, started

        path = request.query_params.get("path", "")
        entry = call(selectors.entry_get, snapshot_id=snapshot_id, path=path)
        if entry.kind != FileEntry.Kind.FILE:
            raise StorageFailed(StorageError("not_found", "Only a file can be downloaded."))
        stream = call(lambda: started(file_stream(snapshot_id, entry.path)))
        return file_response(stream, selectors.entry_name(entry), entry.size)


# -- holders ---------------------------------------------------------------------------------------


def holder_out(view: selectors.HolderView) -> dict[str, Any]:
    holder = view.holder
    return {
        "id": str(holder.pk),
        "name": selectors.holder_name(holder),
        "kind": holder.kind,
        "device": holder.device,
        "state": holder.state,
        "state_words": holder.get_state_display(),
        "problem": holder.problem,
        "quota": holder.quota,
        "used": holder.used,
        "free": view.free,
        "shares": view.shares,
        "at_risk": view.at_risk,
        "verified_ms": holder.verified_ms,
        "seen_ms": holder.seen_ms,
    }


class HoldersApi(APIView):
    @extend_schema(responses=out.StorageHoldersOutput, operation_id="storage_holders", tags=TAG)
    def get(self, request: Request) -> Response:
        """Every holder (your devices, friends' nodes): room, use, state, shares, chunks at
        risk; the totals and the redundancy in words; what needs attention."""
        views = selectors.holder_list()
        totals = selectors.totals()
        body = {
            "holders": [holder_out(v) for v in views],
            "totals": totals.__dict__,
            "redundancy": selectors.redundancy_words(totals),
            "warnings": selectors.warnings(views),
        }
        return Response(out.StorageHoldersOutput(body).data)


class InviteApi(APIView):
    @extend_schema(
        request=out.StorageInviteInput,
        responses={201: out.StorageInviteOutput},
        operation_id="storage_holder_invite",
        tags=TAG,
    )
    def post(self, request: Request) -> Response:
        """An invite for a friend's node to hold encrypted shares of your backups."""
        from apps.storage.hold import holder_invite

        data = _valid(out.StorageInviteInput, request.data)
        made = call(holder_invite, quota_mb=data["quota_mb"], label=data["label"])
        response = Response({"link": made["link"]}, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class CheckApi(APIView):
    @extend_schema(
        request=None, responses=out.StorageCheckOutput, operation_id="storage_check", tags=TAG
    )
    def post(self, request: Request) -> Response:
        """Ask every holder now to prove it keeps its shares, and repair what failed."""
        from apps.storage.audit import audit_step
        from apps.storage.holder_views import check_words
        from apps.storage.repair import repair_step

        if selectors.thread() is None:
            raise StorageFailed(StorageError("conflict", "Nothing is backed up yet."))
        audited = call(audit_step, force=True)
        repaired = call(repair_step)
        ints = {k: int(v) for k, v in audited.items() if isinstance(v, int)}
        fixed = {k: int(v) for k, v in repaired.items() if isinstance(v, int)}
        body = {"words": check_words(audited, repaired), "audit": ints, "repair": fixed}
        return Response(out.StorageCheckOutput(body).data)


class RetentionApi(APIView):
    @extend_schema(
        responses=out.StorageRetentionSerializer, operation_id="storage_retention", tags=TAG
    )
    def get(self, request: Request) -> Response:
        """Which backups are kept: the last N, and one a day, week and month for as many."""
        return Response(selectors.retention())

    @extend_schema(
        request=out.StorageRetentionSerializer,
        responses=out.StorageRetentionSerializer,
        operation_id="storage_retention_set",
        tags=TAG,
    )
    def put(self, request: Request) -> Response:
        from apps.storage.retention import retention_set

        data = _valid(out.StorageRetentionSerializer, request.data)
        call(retention_set, **data)
        return Response(selectors.retention())


class PruneApi(APIView):
    @extend_schema(
        request=None, responses=out.StoragePruneOutput, operation_id="storage_prune", tags=TAG
    )
    def post(self, request: Request) -> Response:
        """Remove the backups the retention keeps none of, and free what only they used."""
        from apps.storage.holder_views import prune_now

        said, done = call(prune_now)
        body = {
            "words": said,
            **{k: int(done.get(k, 0)) for k in ("snapshots", "chunks", "shares")},
        }
        return Response(out.StoragePruneOutput(body).data)


# -- holding for others ----------------------------------------------------------------------------


class HeldListApi(APIView):
    @extend_schema(
        responses=out.StorageHeldOutput(many=True), operation_id="storage_held", tags=TAG
    )
    def get(self, request: Request) -> Response:
        """On a friend's node: the parties it holds shares for."""
        rows = [
            {k: p.get(k, 0 if k in ("used", "quota", "shares") else "") for k in FIELDS}
            for p in selectors.held_list()
        ]
        return Response(out.StorageHeldOutput(rows, many=True).data)


FIELDS = ("party", "label", "used", "quota", "shares")


class HeldGrantApi(APIView):
    @extend_schema(
        request=out.StorageGrantInput,
        responses=out.StorageHeldOutput,
        operation_id="storage_held_grant",
        tags=TAG,
    )
    def put(self, request: Request, party: str) -> Response:
        """Change the room this node gives a party (0: take no new shares from it)."""
        from apps.storage.holder_views import grant

        found = call(selectors.held_get, party=party)
        data = _valid(out.StorageGrantInput, request.data)
        call(grant, hold_thread=found.hold_thread, quota_mb=data["quota_mb"])
        row = next((p for p in selectors.held_list() if p.get("party") == found.party), None)
        if row is None:
            raise StorageFailed(StorageError("not_found", "This node holds no backups for them."))
        return Response(out.StorageHeldOutput({k: row.get(k, 0) for k in FIELDS}).data)
