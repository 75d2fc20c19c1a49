"""The emergency link's public page, ``/e/<link>/`` (namespace ``emergency``): no login, and
no key in the URL (it travels after ``#``; ``emergency_views.open_link``)."""

from django.urls import path

from apps.medical import emergency_views

app_name = "emergency"

urlpatterns = [path("e/<str:link_id>/", emergency_views.open_link, name="open")]
