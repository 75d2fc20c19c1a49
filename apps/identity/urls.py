from django.urls import path

from apps.identity import views, views_challenges, views_evidence, views_settings
from apps.identity import views_witnesses as witness_views

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
    path(CHALLENGES, views_challenges.challenges, name="challenges"),
    path(CHALLENGE + "accept/", views_challenges.challenge_accept, name="challenge_accept"),
    path(CHALLENGE + "judge/", views_challenges.challenge_judge, name="challenge_judge"),
    path(WITNESSES, witness_views.witnesses, name="witnesses"),
    path(WITNESSES + "<str:member>/", witness_views.witness, name="witness"),
    path(SETTINGS, views_settings.settings, name="settings"),
    path(SETTINGS + "kinds/", views_settings.kind_add, name="kind_add"),
    path(SETTINGS + "kinds/<str:slug>/retire/", views_settings.kind_retire, name="kind_retire"),
    path(SETTINGS + "authorities/", views_settings.authority_add, name="authority_add"),
    path(
        SETTINGS + "authorities/revoke/",
        views_settings.authority_revoke,
        name="authority_revoke",
    ),
    path(CLAIM, views.claim, name="claim"),
    path(CLAIM + "attest/", views.attest, name="attest"),
    path(CLAIM + "retract/", views.retract, name="retract"),
    path(CLAIM + "withdraw/", views.withdraw, name="withdraw"),
    path(CLAIM + "challenge/", views_challenges.claim_challenge, name="claim_challenge"),
    path(CLAIM + "credential/", views.credential, name="credential"),
    path(CLAIM + "evidence/<int:index>/", views_evidence.evidence, name="evidence"),
    path(CLAIM + "evidence/<int:index>/preview/", views_evidence.evidence_preview, name="preview"),
]
