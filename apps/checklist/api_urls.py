"""The checklist routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.checklist import apis
from apps.core.api_urls import THREAD

CHECKLIST = THREAD + "checklist/"
ITEM = CHECKLIST + "<str:item_id>/"

api_urlpatterns = [
    path(CHECKLIST, apis.ChecklistApi.as_view(), name="checklist"),
    path(CHECKLIST + "close/", apis.CloseApi.as_view(), name="checklist_close"),
    path(CHECKLIST + "refused/", apis.RefusedApi.as_view(), name="checklist_refused"),
    path(ITEM, apis.ItemApi.as_view(), name="checklist_item"),
    path(ITEM + "claim/", apis.ClaimApi.as_view(), name="checklist_claim"),
    path(ITEM + "unclaim/", apis.UnclaimApi.as_view(), name="checklist_unclaim"),
    path(ITEM + "done/", apis.DoneApi.as_view(), name="checklist_done"),
    path(ITEM + "undone/", apis.UndoneApi.as_view(), name="checklist_undone"),
    path(ITEM + "approve/", apis.ApproveApi.as_view(), name="checklist_approve"),
]
