"""The achievement API end to end on this node (Alice, the club's owner), with Dana, Eli, Fay and
Gus on nodes of their own in this process: claims with evidence, attestations, retractions,
challenges by judges and by poll, witnesses' standing, settings and the credential; every bad
input answered 400/403/404/409 with words, and the schema listing every operation."""

from __future__ import annotations

import datetime
import json

from django.test import Client

from apps.voting import services as voting
from tests.identity.support import Club

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


def in_a_month() -> str:
    return (datetime.date.today() + datetime.timedelta(days=30)).isoformat()


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, json.dumps(body or {}), content_type="application/json")


def put(api: Client, url: str, body: object):
    return api.put(url, json.dumps(body), content_type="application/json")


def url(club: Club, rest: str = "") -> str:
    return f"/api/v1/threads/{club.thread.id}/{rest}"


def words(response) -> str:
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    return json.dumps(body)


def _no_hex(text: str, *keys: str) -> None:
    for key in keys:
        assert key not in text


def test_claims_made_read_and_refused_in_words(browser, club):
    api = browser
    made = post(api, url(club, "claims/"), {"kind": "race", "title": "Ran a marathon"})
    assert made.status_code == 201, made.json()
    claim = made.json()
    assert claim["state"] == "pending"
    assert claim["mine"]
    assert claim["subject_name"] == "you"
    assert claim["needed"] == 2
    assert claim["evidence"] == []
    listed = api.get(url(club, "claims/")).json()
    assert [c["id"] for c in listed] == [claim["id"]]
    assert api.get(url(club, f"claims/{claim['id']}/")).json()["title"] == "Ran a marathon"
    mine = api.get(url(club, "claims/"), {"subject": club.me}).json()
    assert len(mine) == 1
    assert api.get(url(club, "claims/"), {"subject": club.eli.member}).json() == []

    missing = post(api, url(club, "claims/"), {"kind": "race"})
    assert missing.status_code == 400
    assert "title" in missing.json()["fields"]
    unknown = post(api, url(club, "claims/"), {"kind": "chess", "title": "Won"})
    assert unknown.status_code == 400
    assert "keeps no kind of achievement called chess" in words(unknown)
    bad_date = post(api, url(club, "claims/"), {"kind": "race", "title": "x", "event_date": "May"})
    assert bad_date.status_code == 400
    assert "2026-05-17" in words(bad_date)
    assert api.get(url(club, "claims/nonsense/")).status_code == 404
    assert api.get(url(club, "claims/") + "?subject=zz").status_code == 400
    assert api.get("/api/v1/threads/" + "0" * 64 + "/claims/").status_code == 404


def test_evidence_goes_by_multipart_and_only_photos_videos_pdfs(browser, club):
    from django.core.files.uploadedfile import SimpleUploadedFile

    api = browser
    made = api.post(
        url(club, "claims/"),
        {
            "kind": "race",
            "title": "Finish line",
            "files": [SimpleUploadedFile("finish.png", PNG, content_type="image/png")],
        },
    )
    assert made.status_code == 201, made.json()
    (evidence,) = made.json()["evidence"]
    assert evidence == {
        "index": 0,
        "name": "finish.png",
        "mime": "image/png",
        "size": len(PNG),
        "complete": True,
    }
    club.sync()  # the claim reaches Eli's node; its chunks are fetched when shown
    script = api.post(
        url(club, "claims/"),
        {
            "kind": "race",
            "title": "Not a photo",
            "files": [SimpleUploadedFile("x.png", b"#!/bin/sh\n", content_type="image/png")],
        },
    )
    assert script.status_code == 400
    assert "x.png is not a photo, a video or a PDF" in words(script)


def test_attest_retract_and_their_refusals(browser, club):
    api = browser
    eli_claim = club.eli.claim("Climbed the north face")
    club.sync()
    attested = post(api, url(club, f"claims/{eli_claim}/attestations/"), {"verdict": "witnessed"})
    assert attested.status_code == 201, attested.json()
    body = attested.json()
    assert body["my_verdict"] == "witnessed"
    assert body["witnesses"] == ["you"]
    assert body["attestations"][0]["jws"].count(".") == 2

    again = post(api, url(club, f"claims/{eli_claim}/attestations/"), {"verdict": "disputed"})
    assert again.status_code == 409
    assert "already attested" in words(again)
    bad = post(api, url(club, f"claims/{eli_claim}/attestations/"), {"verdict": "maybe"})
    assert bad.status_code == 400
    assert "verdict" in bad.json()["fields"]
    not_json = api.post(
        url(club, f"claims/{eli_claim}/attestations/"), "[1]", content_type="application/json"
    )
    assert not_json.status_code == 400
    own = post(api, url(club, "claims/"), {"kind": "race", "title": "Mine"}).json()
    selfish = post(api, url(club, f"claims/{own['id']}/attestations/"), {"verdict": "witnessed"})
    assert selfish.status_code == 403
    assert "your own claim" in words(selfish)

    retracted = post(api, url(club, f"claims/{eli_claim}/retraction/"), {"reason": "wrong day"})
    assert retracted.status_code == 201
    assert retracted.json()["my_retracted"]
    assert retracted.json()["witnesses"] == []
    twice = post(api, url(club, f"claims/{eli_claim}/retraction/"))
    assert twice.status_code == 409
    assert "already retracted" in words(twice)
    never = post(api, url(club, f"claims/{own['id']}/retraction/"))
    assert never.status_code == 404
    assert "have not attested" in words(never)
    _no_hex(words(twice), club.me, club.eli.member)

    witnesses = api.get(url(club, "witnesses/")).json()
    (me,) = [w for w in witnesses if w["mine"]]
    assert me["name"] == "you"
    assert me["attested"] == 1
    assert len(me["retracted"]) == 1
    assert me["retracted"][0]["claim_title"] == "Climbed the north face"
    one = api.get(url(club, f"witnesses/{club.me}/"))
    assert one.status_code == 200
    assert one.json()["strikes"] == 1
    assert api.get(url(club, "witnesses/zz/")).status_code == 404

    withdrawn = api.delete(url(club, f"claims/{own['id']}/"))
    assert withdrawn.status_code == 200
    assert withdrawn.json()["state"] == "withdrawn"
    not_mine = api.delete(url(club, f"claims/{eli_claim}/"))
    assert not_mine.status_code == 403
    assert "only the member who made a claim" in words(not_mine)


def _verified_claim_of_eli(club: Club) -> str:
    claim = club.eli.claim("Ran a marathon")
    club.sync()
    club.fay.attest(claim)
    club.gus.attest(claim)
    club.sync()
    return claim


def test_a_challenge_by_poll_overturns_the_claim_and_strikes_its_witnesses(browser, club):
    api = browser
    claim = _verified_claim_of_eli(club)
    assert api.get(url(club, f"claims/{claim}/")).json()["state"] == "verified"
    made = post(
        api,
        url(club, "challenges/"),
        {"claim": claim, "mode": "poll", "feat": "Run it again", "deadline": in_a_month()},
    )
    assert made.status_code == 201, made.json()
    challenge = made.json()
    assert challenge["defendant_name"] == "Eli"
    assert challenge["mine"]
    assert challenge["state"] == "voting"
    assert challenge["poll"]
    club.sync()
    # Only Dana may vote: the sides (Alice, Eli) and the witnesses (Fay, Gus) are left out.
    poll = challenge["poll"]
    club.dana.vote(poll, 1)  # the challenger wins
    club.sync()
    voting.poll_close(thread=club.thread, poll_id=poll)
    decided = api.get(url(club, f"challenges/{challenge['id']}/")).json()
    assert decided["state"] == "decided"
    assert decided["winner"] == "challenger"
    assert decided["winner_name"] == "you"
    assert decided["in_effect"]
    assert api.get(url(club, f"claims/{claim}/")).json()["state"] == "overturned"
    standing = {w["name"]: w for w in api.get(url(club, "witnesses/")).json()}
    assert [s["challenge"] for s in standing["Fay"]["overturned"]] == [challenge["id"]]
    assert standing["Gus"]["strikes"] == 1
    assert not standing["Gus"]["flagged"]


def test_a_challenge_by_judges_and_its_refusals(browser, club):
    api = browser
    claim = _verified_claim_of_eli(club)
    witness_judge = post(
        api,
        url(club, "challenges/"),
        {"claim": claim, "mode": "judges", "feat": "Again", "judges": [club.fay.member]},
    )
    assert witness_judge.status_code == 400
    assert "a witness of the claim cannot judge" in words(witness_judge)
    no_judges = post(api, url(club, "challenges/"), {"claim": claim, "mode": "judges", "feat": "x"})
    assert no_judges.status_code == 400
    assert "at least one judge" in words(no_judges)
    stranger = post(
        api,
        url(club, "challenges/"),
        {"claim": claim, "mode": "judges", "feat": "x", "judges": ["ab" * 32]},
    )
    assert stranger.status_code == 400
    assert "not a member of this thread" in words(stranger)
    bad_mode = post(api, url(club, "challenges/"), {"claim": claim, "mode": "dice", "feat": "x"})
    assert bad_mode.status_code == 400
    assert "mode" in bad_mode.json()["fields"]
    duel_self = post(
        api, url(club, "challenges/"), {"defendant": club.me, "mode": "poll", "feat": "x"}
    )
    assert duel_self.status_code == 400
    assert "cannot challenge yourself" in words(duel_self)

    made = post(
        api,
        url(club, "challenges/"),
        {"claim": claim, "mode": "judges", "feat": "Again", "judges": [club.dana.member]},
    ).json()
    assert made["state"] == "waiting_accept"
    assert made["judges"][0]["name"] == "Dana"
    not_defendant = post(api, url(club, f"challenges/{made['id']}/accept/"))
    assert not_defendant.status_code == 403
    assert "only the member challenged" in words(not_defendant)
    not_judge = post(api, url(club, f"challenges/{made['id']}/judgements/"), {"winner": "x"})
    assert not_judge.status_code == 400
    not_judge = post(
        api, url(club, f"challenges/{made['id']}/judgements/"), {"winner": "challenger"}
    )
    assert not_judge.status_code == 403
    assert "not a judge" in words(not_judge)
    club.sync()
    club.eli.accept(made["id"])
    club.sync()
    club.dana.judge(made["id"], "defendant")
    club.sync()
    listed = api.get(url(club, "challenges/")).json()
    assert listed[0]["winner"] == "defendant"
    assert not listed[0]["in_effect"]
    assert api.get(url(club, f"claims/{claim}/")).json()["state"] == "verified"
    assert api.get(url(club, "challenges/nope/")).status_code == 404


def test_settings_read_and_set_by_a_manager(browser, club):
    api = browser
    first = api.get(url(club, "identity/settings/")).json()
    assert first["witnesses"] == 2
    assert first["flag_after"] == 2
    assert first["can_manage"]
    assert [k["slug"] for k in first["kinds"]] == ["race"]
    changed = put(
        api,
        url(club, "identity/settings/"),
        {
            "witnesses": 3,
            "kinds": [{"slug": "race"}, {"slug": "first-aid", "label": "First aid"}],
            "authorities": [{"kind": "first-aid", "member": club.dana.member}],
        },
    )
    assert changed.status_code == 200, changed.json()
    body = changed.json()
    assert body["witnesses"] == 3
    assert body["flag_after"] == 2
    assert body["seq"] == 1
    assert {k["slug"] for k in body["kinds"] if not k["retired"]} == {"race", "first-aid"}
    assert body["authorities"][0]["name"] == "Dana"
    revoked = put(api, url(club, "identity/settings/"), {"authorities": [], "kinds": []}).json()
    assert revoked["authorities"][0]["revoked"]
    assert all(k["retired"] for k in revoked["kinds"])
    zero = put(api, url(club, "identity/settings/"), {"witnesses": 0})
    assert zero.status_code == 400
    assert "1 to 50" in words(zero)
    bad_kind = put(api, url(club, "identity/settings/"), {"kinds": [{"slug": "Bad Name!"}]})
    assert bad_kind.status_code == 400
    assert "lowercase letters" in words(bad_kind)
    text = put(api, url(club, "identity/settings/"), {"witnesses": "many"})
    assert text.status_code == 400
    assert "witnesses" in text.json()["fields"]


def test_the_credential_of_a_verified_claim_only(browser, club):
    api = browser
    made = post(api, url(club, "claims/"), {"kind": "race", "title": "Marathon"}).json()
    pending = api.get(url(club, f"claims/{made['id']}/credential/"))
    assert pending.status_code == 409
    club.sync()
    club.eli.attest(made["id"])
    club.fay.attest(made["id"])
    club.sync()
    found = api.get(url(club, f"claims/{made['id']}/credential/"))
    assert found.status_code == 200, found.json()
    body = found.json()
    assert body["jwt"].count(".") == 2
    assert len(body["endorsements"]) == 2


def test_where_the_app_is_not_enabled_every_endpoint_says_so(browser, node):
    from apps.messaging import services as messaging

    chat = messaging.conversation_create(name="Plain", my_name="Alice")
    for path_ in ("claims/", "challenges/", "witnesses/", "identity/settings/"):
        answer = browser.get(f"/api/v1/threads/{chat.id}/{path_}")
        assert answer.status_code == 409, path_
        assert "identity app" in answer.json()["detail"]


def test_the_schema_lists_every_operation(browser):
    schema = browser.get("/api/schema/?format=json").json()
    operations = {op["operationId"] for item in schema["paths"].values() for op in item.values()}
    assert {
        "identity_claims_list",
        "identity_claims_make",
        "identity_claims_get",
        "identity_claims_withdraw",
        "identity_claims_attest",
        "identity_claims_retract",
        "identity_claims_credential",
        "identity_challenges_list",
        "identity_challenges_make",
        "identity_challenges_get",
        "identity_challenges_accept",
        "identity_challenges_judge",
        "identity_witnesses_list",
        "identity_witnesses_get",
        "identity_settings_get",
        "identity_settings_set",
    } <= operations


# Every endpoint issue 19 names, as (method, path) in the schema, with what its body must carry.
ISSUE_ENDPOINTS = {
    ("get", "/api/v1/profile/fields/"): None,
    ("put", "/api/v1/profile/fields/"): "fields",
    ("post", "/api/v1/threads/{thread_id}/profile/share/"): "fields",
    ("get", "/api/v1/threads/{thread_id}/claims/"): None,
    ("post", "/api/v1/threads/{thread_id}/claims/"): "kind",
    ("post", "/api/v1/threads/{thread_id}/claims/{claim_id}/attestations/"): "verdict",
    ("post", "/api/v1/threads/{thread_id}/challenges/"): "feat",
    ("get", "/api/v1/threads/{thread_id}/witnesses/"): None,
    ("get", "/api/v1/threads/{thread_id}/claims/{claim_id}/credential/"): None,
}


def _body_properties(schema: dict, operation: dict) -> set[str]:
    """The properties of an operation's request body, whatever media type it is described in."""
    found: set[str] = set()
    for media in operation.get("requestBody", {}).get("content", {}).values():
        ref = media["schema"].get("$ref", "")
        body = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else media["schema"]
        found |= set(body.get("properties", {}))
    return found


def test_the_schema_has_every_endpoint_the_issue_names(browser):
    schema = browser.get("/api/schema/?format=json").json()
    for (method, path), needs in ISSUE_ENDPOINTS.items():
        operation = schema["paths"].get(path, {}).get(method)
        assert operation is not None, (method, path)
        assert operation["responses"], (method, path)
        if needs:
            assert needs in _body_properties(schema, operation), (method, path)
    verdict = schema["paths"]["/api/v1/threads/{thread_id}/claims/{claim_id}/attestations/"]
    body = verdict["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    props = schema["components"]["schemas"][body.rsplit("/", 1)[-1]]["properties"]
    assert "note" in props
    choices = props["verdict"]
    if "$ref" in choices:
        choices = schema["components"]["schemas"][choices["$ref"].rsplit("/", 1)[-1]]
    elif "allOf" in choices:
        choices = schema["components"]["schemas"][choices["allOf"][0]["$ref"].rsplit("/", 1)[-1]]
    assert set(choices["enum"]) == {"witnessed", "disputed"}, choices


def test_accepting_and_judging_through_the_api(browser, club):
    api = browser
    duel = club.gus.challenge(defendant=club.me, judges=[club.dana.member], feat="Arm wrestling")
    judged = club.gus.challenge(defendant=club.eli.member, judges=[club.me], feat="Sprint")
    club.sync()
    accepted = post(api, url(club, f"challenges/{duel}/accept/"))
    assert accepted.status_code == 201, accepted.json()
    assert accepted.json()["state"] == "judging"
    twice = post(api, url(club, f"challenges/{duel}/accept/"))
    assert twice.status_code == 409
    assert "already accepted" in words(twice)
    early = post(api, url(club, f"challenges/{judged}/judgements/"), {"winner": "defendant"})
    assert early.status_code == 409
    assert "not accepted this challenge yet" in words(early)
    club.sync()
    club.eli.accept(judged)
    club.sync()
    made = post(
        api, url(club, f"challenges/{judged}/judgements/"), {"winner": "defendant", "note": "fair"}
    )
    assert made.status_code == 201, made.json()
    body = made.json()
    assert body["state"] == "decided"  # one judge of one: this node wrote the outcome too
    assert body["winner_name"] == "Eli"
    assert body["judges"] == [{"member": club.me, "name": "you", "said": "defendant"}]
