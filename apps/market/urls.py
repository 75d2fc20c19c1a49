from django.urls import path

from apps.market import deal_views, home_views, views

app_name = "market"

MARKET = "market/"
SHOP = "node/threads/<str:thread_id>/shop/"
LISTING = SHOP + "<str:listing>/"
PHOTO = LISTING + "photos/<str:photo>/"
DEAL = "node/threads/<str:thread_id>/deal/"

urlpatterns = [
    path(MARKET, home_views.home, name="home"),
    path(MARKET + "shops/", home_views.shop_create, name="shop_create"),
    path(MARKET + "follow/", home_views.follow, name="follow"),
    path(MARKET + "indexes/", home_views.index_add, name="index_add"),
    path(MARKET + "indexes/remove/", home_views.index_remove, name="index_remove"),
    path(MARKET + "index/", home_views.index_settings, name="index_settings"),
    path(SHOP, views.shop, name="shop"),
    path(SHOP + "about/", views.shop_edit, name="shop_edit"),
    path(SHOP + "new/", views.listing_new, name="listing_new"),
    path(LISTING, views.listing, name="listing"),
    path(LISTING + "edit/", views.listing_edit, name="listing_edit"),
    path(LISTING + "photos/", views.photo_add, name="photo_add"),
    path(PHOTO, views.photo, name="photo"),
    path(PHOTO + "thumb/", views.photo_thumb, name="photo_thumb"),
    path(PHOTO + "remove/", views.photo_remove, name="photo_remove"),
    path(LISTING + "offer/", views.offer, name="offer"),
    path(LISTING + "bid/", views.bid, name="bid"),
    path(LISTING + "offers/<str:offer>/accept/", views.accept, name="accept"),
    path(LISTING + "close/", views.close, name="close"),
    path(DEAL, deal_views.deal_page, name="deal"),
    path(DEAL + "step/", deal_views.step, name="deal_step"),
    path(DEAL + "release/", deal_views.release, name="deal_release"),
    path(DEAL + "message/", deal_views.message, name="deal_message"),
    path(DEAL + "rating/", deal_views.rating, name="deal_rating"),
    path(DEAL + "invite/", deal_views.invite, name="deal_invite"),
]
