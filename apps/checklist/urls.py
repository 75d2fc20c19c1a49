from django.urls import path

from apps.checklist import views

app_name = "checklist"

CHECKLIST = "node/threads/<str:thread_id>/checklist/"
ITEM = CHECKLIST + "i/<str:item_id>/"

urlpatterns = [
    path(CHECKLIST, views.checklist, name="checklist"),
    path(CHECKLIST + "enable/", views.enable, name="enable"),
    path(CHECKLIST + "close/", views.list_close, name="close"),
    path(ITEM + "edit/", views.item_edit, name="edit"),
    path(ITEM + "<str:action>/", views.item_action, name="action"),
]
