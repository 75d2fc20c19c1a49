"""``POST /api/v1/threads/{id}/leave/``: leaving a thread (the leave page's service)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.threads import services
from apps.core.threads.api_errors import _call, _thread
from apps.core.threads.apis import ThreadDetailOutput


class ThreadLeaveApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: OpenApiResponse(
                ThreadDetailOutput, description="Left; another member's node has the leave."
            ),
            202: OpenApiResponse(
                ThreadDetailOutput,
                description="Left here; no other member's node could be reached within a few "
                "seconds, so `problem` says the others have not heard yet. This node tells them "
                "at its next contact with any of them.",
            ),
            403: OpenApiResponse(description="The owner cannot leave (make someone else owner)."),
            404: OpenApiResponse(description="No such thread on this node."),
            409: OpenApiResponse(description="This node is no longer a member of the thread."),
        },
        operation_id="threads_leave",
        description="Leave a thread: a signed leave, sent to the other members' nodes (they see "
        "that you left and start new keys without you). You stop receiving the thread and can "
        "come back only with a new invite. For a thread this node is still joining (or was not "
        "admitted to), this stops the join. Answers the thread in its new state, `left`.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        told = _call(services.thread_leave, thread=thread)
        thread.refresh_from_db()
        code = status.HTTP_200_OK if told else status.HTTP_202_ACCEPTED
        return Response(ThreadDetailOutput(thread).data, status=code)
