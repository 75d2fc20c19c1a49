from django.urls import path

from apps.identity.consumers import ChallengesConsumer, ClaimConsumer, ClaimsConsumer

# "challenges" before the claim's id: it is not a claim.
websocket_urlpatterns = [
    path("ws/identity/<str:thread_id>/", ClaimsConsumer.as_asgi()),
    path("ws/identity/<str:thread_id>/challenges/", ChallengesConsumer.as_asgi()),
    path("ws/identity/<str:thread_id>/<str:claim_id>/", ClaimConsumer.as_asgi()),
]
