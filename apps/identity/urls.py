from django.urls import path

from apps.identity import views

app_name = "identity"

TAB = "node/threads/<str:thread_id>/achievements/"
CLAIM = TAB + "<str:claim_id>/"
CHALLENGES = TAB + "challenges/"
CHALLENGE = CHALLENGES + "<str:challenge_id>/"
WITNESSES = TAB + "witnesses/"
SETTINGS = TAB + "settings/"

# The fixed words come before the claim's id: "challenges" is not a claim.
urlpatterns = [
    path(TAB, views.achievements, name="achievements"),
    path(TAB + "enable/", views.enable, name="enable"),
    path(CHALLENGES, views.challenges, name="challenges"),
    path(CHALLENGE + "accept/", views.challenge_accept, name="challenge_accept"),
    path(CHALLENGE + "judge/", views.challenge_judge, name="challenge_judge"),
    path(WITNESSES, views.witnesses, name="witnesses"),
    path(WITNESSES + "<str:member>/", views.witness, name="witness"),
    path(SETTINGS, views.settings, name="settings"),
    path(SETTINGS + "kinds/", views.kind_add, name="kind_add"),
    path(SETTINGS + "kinds/<str:slug>/retire/", views.kind_retire, name="kind_retire"),
    path(SETTINGS + "authorities/", views.authority_add, name="authority_add"),
    path(SETTINGS + "authorities/revoke/", views.authority_revoke, name="authority_revoke"),
    path(CLAIM, views.claim, name="claim"),
    path(CLAIM + "attest/", views.attest, name="attest"),
    path(CLAIM + "retract/", views.retract, name="retract"),
    path(CLAIM + "withdraw/", views.withdraw, name="withdraw"),
    path(CLAIM + "challenge/", views.claim_challenge, name="claim_challenge"),
    path(CLAIM + "credential/", views.credential, name="credential"),
    path(CLAIM + "evidence/<int:index>/", views.evidence, name="evidence"),
    path(CLAIM + "evidence/<int:index>/preview/", views.evidence_preview, name="preview"),
]
