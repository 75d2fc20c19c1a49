"""The achievement routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.identity import apis

CLAIMS = THREAD + "claims/"
CLAIM = CLAIMS + "<str:claim_id>/"
CHALLENGES = THREAD + "challenges/"
CHALLENGE = CHALLENGES + "<str:challenge_id>/"
WITNESSES = THREAD + "witnesses/"

api_urlpatterns = [
    path(CLAIMS, apis.ClaimsApi.as_view(), name="identity_claims"),
    path(CLAIM, apis.ClaimApi.as_view(), name="identity_claim"),
    path(CLAIM + "attestations/", apis.AttestationsApi.as_view(), name="identity_attestations"),
    path(CLAIM + "retraction/", apis.RetractionApi.as_view(), name="identity_retraction"),
    path(CLAIM + "credential/", apis.CredentialApi.as_view(), name="identity_credential"),
    path(CHALLENGES, apis.ChallengesApi.as_view(), name="identity_challenges"),
    path(CHALLENGE, apis.ChallengeApi.as_view(), name="identity_challenge"),
    path(CHALLENGE + "accept/", apis.AcceptApi.as_view(), name="identity_accept"),
    path(CHALLENGE + "judgements/", apis.JudgementsApi.as_view(), name="identity_judgements"),
    path(WITNESSES, apis.WitnessesApi.as_view(), name="identity_witnesses"),
    path(WITNESSES + "<str:member>/", apis.WitnessApi.as_view(), name="identity_witness"),
    path(THREAD + "identity/settings/", apis.SettingsApi.as_view(), name="identity_settings"),
]
