"""The deal routes under /api/v1/: a deal is its own thread, named by its id."""

from django.urls import path

from apps.market import deal_apis

DEAL = "deals/<str:thread_id>/"

api_urlpatterns = [
    path("deals/", deal_apis.DealsApi.as_view(), name="market_deals"),
    path(DEAL, deal_apis.DealApi.as_view(), name="market_deal"),
    path(DEAL + "steps/", deal_apis.StepsApi.as_view(), name="market_deal_steps"),
    path(DEAL + "rating/", deal_apis.RatingApi.as_view(), name="market_deal_rating"),
    path(DEAL + "messages/", deal_apis.MessagesApi.as_view(), name="market_deal_messages"),
    path(DEAL + "release/", deal_apis.ReleaseApi.as_view(), name="market_deal_release"),
    path(DEAL + "invites/", deal_apis.InvitesApi.as_view(), name="market_deal_invites"),
]
