"""The shop routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.market import apis

LISTING = THREAD + "listings/<str:listing>/"

api_urlpatterns = [
    path("shops/", apis.ShopsApi.as_view(), name="market_shops"),
    path(THREAD + "shop/", apis.ShopApi.as_view(), name="market_shop"),
    path(THREAD + "listings/", apis.ListingsApi.as_view(), name="market_listings"),
    path(LISTING, apis.ListingApi.as_view(), name="market_listing"),
    path(LISTING + "photos/", apis.PhotosApi.as_view(), name="market_photos"),
    path(LISTING + "offers/", apis.OffersApi.as_view(), name="market_offers"),
    path(LISTING + "offers/<str:offer>/accept/", apis.AcceptApi.as_view(), name="market_accept"),
    path(LISTING + "bids/", apis.BidsApi.as_view(), name="market_bids"),
    path(LISTING + "close/", apis.CloseApi.as_view(), name="market_close"),
]
