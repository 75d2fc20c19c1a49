from django.urls import path

from apps.ledger import lift_views, views

app_name = "ledger"

MONEY = "ledger/"
TALLY = "node/threads/<str:thread_id>/tally/"

urlpatterns = [
    path(MONEY, views.tallies, name="tallies"),
    path(MONEY + "live/", views.tallies_live, name="tallies_live"),
    path(MONEY + "request/", views.open_link, name="open_link"),
    path(MONEY + "lifts/", lift_views.lifts_page, name="lifts"),
    path(MONEY + "lifts/live/", lift_views.lifts_live, name="lifts_live"),
    path(MONEY + "lifts/settings/", lift_views.lift_settings, name="lift_settings"),
    path(TALLY, views.tally, name="tally"),
    path(TALLY + "sign/", views.sign, name="sign"),
    path(TALLY + "pay/", views.pay, name="pay"),
    path(TALLY + "ask/", views.ask, name="ask"),
    path(TALLY + "limit/", views.limit, name="limit"),
    path(TALLY + "close/", views.close, name="close"),
]
