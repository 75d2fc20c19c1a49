from django.urls import path

from apps.market.consumers import DealConsumer, ShopConsumer

websocket_urlpatterns = [
    path("ws/market/shop/<str:thread_id>/", ShopConsumer.as_asgi()),
    path("ws/market/shop/<str:thread_id>/<str:listing>/", ShopConsumer.as_asgi()),
    path("ws/market/deal/<str:thread_id>/", DealConsumer.as_asgi()),
]
