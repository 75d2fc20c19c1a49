"""The achievement API's shapes (for drf-spectacular's schema and input checks) and the bodies
made from the selectors' views. People carry their member key (``member``, for links and
further calls) and their name as this thread knows them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.identity import selectors, standing
from apps.identity.models import (
    MAX_DESCRIPTION,
    MAX_FEAT,
    MAX_LABEL,
    MAX_NAME,
    MAX_NOTE,
    MAX_PLACE,
    MAX_TITLE,
)

VERDICTS = ("witnessed", "disputed")
SIDES = ("challenger", "defendant")
MODES = ("judges", "poll")

# -- input ---------------------------------------------------------------------------------------


class ClaimInput(serializers.Serializer):
    kind = serializers.CharField(max_length=MAX_NAME)
    title = serializers.CharField(max_length=MAX_TITLE)
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION, required=False, allow_blank=True, default=""
    )
    event_date = serializers.CharField(
        max_length=10, required=False, allow_blank=True, default="", help_text="YYYY-MM-DD"
    )
    place = serializers.CharField(
        max_length=MAX_PLACE, required=False, allow_blank=True, default=""
    )
    files = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        default=list,
        help_text="Evidence (multipart): up to 10 photos, videos or PDFs of 25 MB each.",
    )


class AttestationInput(serializers.Serializer):
    verdict = serializers.ChoiceField(list(VERDICTS))
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True, default="")


class RetractionInput(serializers.Serializer):
    reason = serializers.CharField(
        max_length=MAX_NOTE, required=False, allow_blank=True, default=""
    )


class ChallengeInput(serializers.Serializer):
    feat = serializers.CharField(max_length=MAX_FEAT)
    mode = serializers.ChoiceField(list(MODES))
    deadline = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    claim = serializers.CharField(
        max_length=36, required=False, allow_null=True, default=None, help_text="A claim's id."
    )
    against = serializers.CharField(
        max_length=36,
        required=False,
        allow_null=True,
        default=None,
        help_text="A won challenge's id, to challenge it back.",
    )
    defendant = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        default=None,
        help_text="A duel: the member challenged (member key, hex).",
    )
    judges = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        max_length=9,
        help_text="Judges mode: the judges' member keys (hex).",
    )


class JudgementInput(serializers.Serializer):
    winner = serializers.ChoiceField(list(SIDES))
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True, default="")


class KindInput(serializers.Serializer):
    slug = serializers.CharField(max_length=MAX_NAME)
    label = serializers.CharField(
        max_length=MAX_LABEL, required=False, allow_blank=True, default=""
    )


class AuthorityInput(serializers.Serializer):
    kind = serializers.CharField(max_length=MAX_NAME)
    member = serializers.CharField(max_length=64)


class SettingsInput(serializers.Serializer):
    witnesses = serializers.IntegerField(required=False, help_text="k: witnesses a claim needs.")
    flag_after = serializers.IntegerField(
        required=False, help_text="Retracted plus overturned attestations that flag a witness."
    )
    kinds = KindInput(
        many=True, required=False, help_text="The kinds in use: others are retired, new added."
    )
    authorities = AuthorityInput(
        many=True, required=False, help_text="The trusted authorities: others are revoked."
    )


# -- output --------------------------------------------------------------------------------------


class EvidenceOutput(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    mime = serializers.CharField()
    size = serializers.IntegerField()
    complete = serializers.BooleanField(help_text="This node holds every chunk of it.")


class AttestationOutput(serializers.Serializer):
    id = serializers.CharField()
    witness = serializers.CharField()
    witness_name = serializers.CharField()
    verdict = serializers.ChoiceField(list(VERDICTS))
    note = serializers.CharField()
    retracted = serializers.BooleanField()
    retraction_reason = serializers.CharField()
    counts = serializers.BooleanField(help_text="It counts towards verification now.")
    flagged = serializers.BooleanField(help_text="Its witness is flagged.")
    authority = serializers.BooleanField(help_text="Its witness is trusted for the kind.")
    mine = serializers.BooleanField()
    jws = serializers.CharField(help_text="The witness's signed endorsement (compact JWS).")


class ChallengeRefOutput(serializers.Serializer):
    id = serializers.CharField()
    feat = serializers.CharField()
    state = serializers.ChoiceField(list(selectors.CHALLENGE_STATES))
    winner = serializers.CharField(allow_null=True)


class ClaimOutput(serializers.Serializer):
    id = serializers.CharField()
    subject = serializers.CharField()
    subject_name = serializers.CharField()
    mine = serializers.BooleanField()
    kind = serializers.CharField()
    kind_label = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    event_date = serializers.CharField()
    place = serializers.CharField()
    evidence = EvidenceOutput(many=True)
    state = serializers.ChoiceField(list(standing.CLAIM_STATES))
    needed = serializers.IntegerField(help_text="k: witnesses needed.")
    witnesses = serializers.ListField(
        child=serializers.CharField(), help_text="Names of the witnesses who count."
    )
    disputes = serializers.ListField(child=serializers.CharField())
    authority_name = serializers.CharField(allow_null=True)
    attestations = AttestationOutput(many=True)
    my_verdict = serializers.CharField(allow_null=True)
    my_retracted = serializers.BooleanField()
    challenges = ChallengeRefOutput(many=True)
    overturned_by = serializers.CharField(allow_null=True)
    refused = serializers.ListField(
        child=serializers.CharField(),
        help_text="Your writes on it the thread refused later (a row from elsewhere came first).",
    )


class JudgeOutput(serializers.Serializer):
    member = serializers.CharField()
    name = serializers.CharField()
    said = serializers.CharField(allow_null=True)


class ChallengeOutput(serializers.Serializer):
    id = serializers.CharField()
    challenger = serializers.CharField()
    challenger_name = serializers.CharField()
    defendant = serializers.CharField()
    defendant_name = serializers.CharField()
    mine = serializers.BooleanField()
    defending = serializers.BooleanField()
    claim = serializers.CharField(allow_null=True)
    claim_title = serializers.CharField()
    against = serializers.CharField(allow_null=True)
    feat = serializers.CharField()
    deadline = serializers.CharField()
    mode = serializers.ChoiceField(list(MODES))
    judges = JudgeOutput(many=True)
    poll = serializers.CharField(allow_null=True, help_text="The voting poll deciding it.")
    poll_state = serializers.CharField(allow_null=True)
    accepted = serializers.BooleanField()
    winner = serializers.CharField(allow_null=True)
    winner_name = serializers.CharField(allow_null=True)
    in_effect = serializers.BooleanField(
        help_text="Won by its challenger and not undone by a challenge back."
    )
    state = serializers.ChoiceField(list(selectors.CHALLENGE_STATES))
    can_accept = serializers.BooleanField()
    can_judge = serializers.BooleanField()


class StrikeOutput(serializers.Serializer):
    attestation = serializers.CharField()
    claim = serializers.CharField()
    claim_title = serializers.CharField()
    challenge = serializers.CharField(allow_null=True)
    challenge_feat = serializers.CharField()


class WitnessOutput(serializers.Serializer):
    member = serializers.CharField()
    name = serializers.CharField()
    mine = serializers.BooleanField()
    attested = serializers.IntegerField()
    retracted = StrikeOutput(many=True)
    overturned = StrikeOutput(many=True)
    strikes = serializers.IntegerField()
    flag_after = serializers.IntegerField()
    flagged = serializers.BooleanField()


class KindOutput(serializers.Serializer):
    slug = serializers.CharField()
    label = serializers.CharField()
    retired = serializers.BooleanField()
    claims = serializers.IntegerField()


class AuthorityOutput(serializers.Serializer):
    kind = serializers.CharField()
    kind_label = serializers.CharField()
    member = serializers.CharField()
    name = serializers.CharField()
    revoked = serializers.BooleanField()


class SettingsOutput(serializers.Serializer):
    witnesses = serializers.IntegerField()
    flag_after = serializers.IntegerField()
    seq = serializers.IntegerField()
    can_manage = serializers.BooleanField()
    kinds = KindOutput(many=True)
    authorities = AuthorityOutput(many=True)


class CredentialOutput(serializers.Serializer):
    credential = serializers.DictField(help_text="The Open Badges 3.0 OpenBadgeCredential.")
    jwt = serializers.CharField(help_text="It secured as vc+jwt by the subject's member key.")
    endorsements = serializers.ListField(child=serializers.CharField())


# -- bodies ----------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def claim_body(view: selectors.ClaimView) -> dict[str, Any]:
    body = _plain(view)
    body["evidence"] = [
        {"index": f.index, "name": f.name, "mime": f.mime, "size": f.size, "complete": f.complete}
        for f in view.evidence
    ]
    return body


def challenge_body(view: selectors.ChallengeView) -> dict[str, Any]:
    body = _plain(view)
    for judge in body["judges"]:
        judge.pop("mine", None)
    return body


def witness_body(view: selectors.WitnessView) -> dict[str, Any]:
    return _plain(view)


def settings_body(
    view: selectors.SettingsView,
    kinds: list[selectors.KindView],
    authorities: list[selectors.AuthorityView],
) -> dict[str, Any]:
    return {**_plain(view), "kinds": _plain(kinds), "authorities": _plain(authorities)}
