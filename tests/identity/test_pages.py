"""The achievements pages without JavaScript (forms that post and redirect): enabling the app,
claiming with a photo, the badge as witnesses attest on their own nodes, attesting, retracting
and withdrawing through the pages, challenges decided by judges, witness standing with every
input listed, the thread's rules; refusals as messages in plain words; no hex ids, template
syntax or empty labels on any page; and the live socket that turns a claim's badge Verified."""

from __future__ import annotations

import html as entities
import io
import json
import re

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.core.threads.app_kit import app_enabled
from apps.identity import policy
from apps.identity.models import Challenge, Claim
from apps.messaging import services as messaging
from apps.p2p.client import live_group
from tests.identity.support import Club
from tests.support.sockets import logged_in_cookies, socket

pytestmark = pytest.mark.django_db(transaction=True)

HEX = re.compile(r"\b[0-9a-f]{8,}\b")


def url(name: str, club_or_thread, *args: str) -> str:
    thread = club_or_thread.thread if isinstance(club_or_thread, Club) else club_or_thread
    return reverse(f"identity:{name}", args=[thread.id, *args])


def visible(html: str) -> str:
    """The page's text as read (tags, attributes and the CSRF token out)."""
    main = html.split("<main", 1)[1].split("</main>", 1)[0]
    return " ".join(entities.unescape(re.sub(r"<[^>]+>", " ", main)).split())


def words(fragment: str) -> str:
    """A fragment's text as read."""
    return " ".join(entities.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def looks_right(html: str) -> str:
    text = visible(html)
    assert not HEX.search(text), HEX.search(text)
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text
    assert not re.search(r"<label[^>]*>\s*</label>", html), "an empty label"
    return text


def page(browser: Client, address: str, status: int = 200) -> str:
    answer = browser.get(address)
    assert answer.status_code == status, answer.status_code
    return looks_right(answer.content.decode())


def flashed(browser: Client, address: str, data: dict | None = None) -> str:
    """Post a page's form; it redirects; what the next page says."""
    done = browser.post(address, data or {})
    assert done.status_code == 302, visible(done.content.decode())
    return page(browser, done["Location"])


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


def claim_through_form(browser: Client, club: Club, title: str = "Ran the Alpine 10k") -> str:
    picture = SimpleUploadedFile("finish.png", photo(), content_type="image/png")
    data = {
        "kind": "race",
        "title": title,
        "description": "Under the hour, in the rain.",
        "event_date": "2026-11-28",
        "place": "Chamonix",
        "evidence": [picture],
    }
    done = browser.post(url("achievements", club), data)
    assert done.status_code == 302, visible(done.content.decode())
    claim_id = done["Location"].rstrip("/").rsplit("/", 1)[1]
    assert done["Location"] == url("claim", club, claim_id)
    return claim_id


def test_achievements_are_enabled_from_their_tab(browser):
    chat = messaging.conversation_create(name="Flat share", my_name="Alice")
    text = page(browser, url("achievements", chat))
    assert "No achievements here yet" in text
    assert "Achievements · you are its owner" in text  # in words, not "you are owner"
    assert "Enable achievements" in text
    text = flashed(browser, url("enable", chat))
    assert app_enabled(chat, policy.APP)
    assert "Achievements are on in this thread" in text
    html = browser.get(url("achievements", chat)).content.decode()
    assert f'<a href="{url("achievements", chat)}" aria-current="page">Achievements</a>' in html
    assert "No achievements claimed yet" in text
    # Without kinds nobody can claim yet; the owner is pointed at the rules.
    assert "add one in its rules" in text
    assert browser.get(url("claim", chat, "0" * 32)).status_code == 404


def test_a_claim_with_a_photo_verified_by_two_witnesses_on_their_nodes(browser, club):
    claim_id = claim_through_form(browser, club)
    text = page(browser, url("claim", club, claim_id))
    assert "Your claim is made" in text
    assert "Waiting for witnesses (0 of 2)" in text
    assert "claimed by you" in text
    assert "Chamonix" in text
    assert "Under the hour" in text
    assert "Witnessed" not in text  # nobody attests their own claim: no button
    shown = browser.get(url("evidence", club, claim_id, "0"))
    assert shown.status_code == 200
    assert shown["Content-Type"] == "image/png"
    assert b"".join(shown.streaming_content) == photo()
    assert shown["X-Content-Type-Options"] == "nosniff"
    assert browser.get(url("evidence", club, claim_id, "1")).status_code == 404
    html = browser.get(url("claim", club, claim_id)).content.decode()
    preview = url("preview", club, claim_id, "0")
    full = url("evidence", club, claim_id, "0")
    assert f'<a href="{full}"><img src="{preview}" alt="finish.png"' in html
    small = browser.get(preview)
    assert small["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(small.content)).size == (64, 48)  # small already: kept

    club.sync([club.eli, club.fay])
    club.eli.attest(claim_id, note="I ran beside her")
    club.eli.send()
    text = page(browser, url("claim", club, claim_id))
    assert "Waiting for witnesses (1 of 2)" in text
    assert "Eli witnessed it “I ran beside her”" in text
    club.fay.attest(claim_id)
    club.fay.send()
    text = page(browser, url("claim", club, claim_id))
    assert "Verified by 2 witnesses" in text
    assert "Download credential" in text
    listed = page(browser, url("achievements", club))
    assert "Ran the Alpine 10k" in listed
    assert "Verified by 2 witnesses" in listed


def test_a_member_attests_and_retracts_through_the_page(browser, club):
    claim_id = club.dana.claim("Led the north face")
    club.dana.send()
    text = page(browser, url("claim", club, claim_id))
    assert "claimed by Dana" in text
    assert "Waiting for witnesses (0 of 2)" in text
    text = flashed(
        browser, url("attest", club, claim_id), {"verdict": "witnessed", "note": "Saw it"}
    )
    assert "You witnessed this claim" in text
    assert "You witnessed it “Saw it”" in text
    assert "Waiting for witnesses (1 of 2)" in text
    assert "Retract mine" in text
    text = flashed(browser, url("attest", club, claim_id), {"verdict": "witnessed"})
    assert "Your word was not recorded:" in text  # once per witness and claim
    text = flashed(browser, url("retract", club, claim_id), {"reason": "Wrong day"})
    assert "You took your word back" in text
    assert "You witnessed it, then took it back “Saw it” Why: Wrong day" in text
    assert "Waiting for witnesses (0 of 2)" in text
    assert "Retract mine" not in text
    standing = page(browser, url("witness", club, club.me))
    assert "Retracted attestations Led the north face Overturned attestations None." in standing
    assert "flagged after 2 retracted or overturned attestations" in standing.lower()
    assert "Counts as a witness." in standing
    # With the flag at one strike, Alice is flagged: her word no longer counts anywhere.
    flashed(browser, url("settings", club), {"witnesses": "2", "flag_after": "1"})
    listed = page(browser, url("witnesses", club))
    assert "You 1 attested · 1 retracted · 0 overturned Flagged" in listed
    assert "Flagged: you do not count as a witness." in page(browser, url("witness", club, club.me))
    other = club.eli.claim("Onsight at the crag")
    club.eli.send()
    text = flashed(browser, url("attest", club, other), {"verdict": "witnessed"})
    assert "You witnessed it Flagged: does not count" in text
    assert "Waiting for witnesses (0 of 2)" in text


def test_the_subject_withdraws_and_refusals_come_in_words(browser, club):
    claim_id = claim_through_form(browser, club, "Climbed the Dent")
    text = flashed(browser, url("attest", club, claim_id), {"verdict": "witnessed"})
    assert "Your word was not recorded:" in text
    text = flashed(browser, url("attest", club, claim_id), {"verdict": "maybe"})
    assert "Choose whether you witnessed it or dispute it." in text
    text = flashed(browser, url("withdraw", club, claim_id))
    assert "Your claim is withdrawn" in text
    assert "Withdrawn" in text
    assert "Withdraw my claim" not in text
    text = flashed(browser, url("withdraw", club, claim_id))
    assert "Your claim was not withdrawn:" in text
    # A file that is not a photo, video or PDF is refused in words, and nothing is claimed.
    notes = SimpleUploadedFile("notes.txt", b"I was there, honest", content_type="image/png")
    refused = browser.post(
        url("achievements", club), {"kind": "race", "title": "Big wall", "evidence": [notes]}
    )
    assert refused.status_code == 400
    assert "is not a photo, a video or a PDF" in looks_right(refused.content.decode())
    assert not Claim.objects.using(club.alias).filter(title="Big wall").exists()
    # A bad claim form comes back with the errors beside the fields.
    refused = browser.post(url("achievements", club), {"kind": "chess", "title": ""})
    assert refused.status_code == 400
    text = looks_right(refused.content.decode())
    assert "Select a valid choice" in text
    assert "This field is required" in text


def test_a_challenge_decided_by_judges_overturns_the_claim(browser, club):
    claim_id = club.eli.claim("Fastest on the slab")
    club.eli.send()
    club.fay.receive()
    club.fay.attest(claim_id)
    club.gus.receive()
    club.gus.attest(claim_id)
    club.sync([club.fay, club.gus])
    text = page(browser, url("claim", club, claim_id))
    assert "Verified by 2 witnesses" in text
    assert "Challenge this claim" in text
    html = browser.get(url("claim", club, claim_id)).content.decode()
    offered = re.findall(r'name="judges" value="([0-9a-f]+)"', html)
    assert offered == [club.dana.member]  # not the subject, not its witnesses, not oneself
    form = {
        "claim": claim_id,
        "feat": "Climb it again under a minute",
        "mode": "judges",
        "judges": [club.dana.member],
    }
    text = flashed(browser, url("claim_challenge", club, claim_id), form)
    assert "Your challenge is made" in text
    assert "Climb it again under a minute" in text
    assert "You challenged Eli" in text
    assert "Waiting for Eli to accept" in text
    club.sync()
    challenge_id = Challenge.objects.using(club.alias).get().pk.hex
    club.eli.accept(challenge_id)
    club.eli.send()
    club.sync([club.dana, club.gus])
    club.dana.receive()
    club.dana.judge(challenge_id, "challenger")
    club.dana.send()
    text = page(browser, url("challenges", club))
    assert "Dana says you win" in text  # people by name, never "the challenger"
    assert "You won" in text
    text = page(browser, url("claim", club, claim_id))
    assert "Overturned" in text
    assert "Climb it again under a minute · You won" in text
    for word in ("challenger", "defendant"):
        assert word not in text.casefold()
    standing = page(browser, url("witness", club, club.fay.member))
    assert (
        "Overturned attestations Fastest on the slab · overturned by the challenge “Climb it again"
        in standing
    )


def test_a_judge_judges_on_the_page_and_a_duel_is_offered(browser, club):
    claim_id = club.eli.claim("Longest roof")
    club.eli.send()
    club.fay.receive()
    club.fay.challenge(
        defendant=club.eli.member, claim=claim_id, judges=[club.me], feat="Hold it a minute"
    )
    club.fay.send()
    challenge_id = Challenge.objects.using(club.alias).get().pk.hex
    text = page(browser, url("challenges", club))
    assert "Fay challenged Eli" in text
    assert "wins" not in text.split("Hold it a minute", 1)[1].split("Challenge a member")[0]
    club.eli.receive()
    club.eli.accept(challenge_id)
    club.eli.send()
    text = page(browser, url("challenges", club))
    assert "Eli wins" in text
    assert "Fay wins" in text
    text = flashed(browser, url("challenge_judge", club, challenge_id), {"winner": "defendant"})
    assert "Your judgement is recorded" in text
    assert "Eli won" in text
    assert "Duels won" not in page(browser, url("achievements", club))  # it was on a claim
    duel = club.gus.challenge(defendant=club.fay.member, judges=[club.me], feat="Hang longest")
    club.sync([club.gus, club.fay])
    club.fay.accept(duel)
    club.fay.send()
    flashed(browser, url("challenge_judge", club, duel), {"winner": "challenger"})
    listed = page(browser, url("achievements", club))
    assert "Duels won Gus won a duel against Fay: Hang longest" in listed
    # A duel: the form offers the members by name, never oneself.
    html = browser.get(url("challenges", club)).content.decode()
    assert '<option value="' + club.dana.member + '">Dana</option>' in html
    assert club.me not in re.findall(r'<option value="([0-9a-f]+)"', html)


def test_the_rules_kinds_and_trusted_authorities(browser, club):
    text = page(browser, url("settings", club))
    assert "verified when 2 members other than its claimant witness it" in text
    text = flashed(browser, url("settings", club), {"witnesses": "3", "flag_after": "1"})
    assert "The new rules are in force" in text
    assert "verified when 3 members other than its claimant witness it" in text
    assert "flagged after 1 retracted or overturned attestation;" in text
    refused = browser.post(url("settings", club), {"witnesses": "0", "flag_after": "1"})
    assert refused.status_code == 400
    text = flashed(browser, url("kind_add", club), {"label": "First aid"})
    assert "Members can now claim “First aid”" in text
    text = flashed(
        browser, url("authority_add", club), {"kind": "first-aid", "member": club.dana.member}
    )
    assert "Dana is trusted for it now" in text
    assert "Dana, for First aid" in text
    text = flashed(browser, url("authority_add", club), {"kind": "first-aid", "member": "ab" * 32})
    assert "Choose a kind and a member of this thread." in text
    text = flashed(browser, url("kind_retire", club, "first-aid"))
    assert "Nobody can claim that kind any more" in text
    # The claim form no longer offers it.
    html = browser.get(url("achievements", club)).content.decode()
    assert 'value="first-aid"' not in html
    # A member trusted for a kind verifies a claim of it with one word.
    text = flashed(
        browser, url("authority_add", club), {"kind": "race", "member": club.dana.member}
    )
    assert "Dana is trusted for it now" in text
    club.sync([club.dana, club.eli])
    claim_id = club.eli.claim("Led the relay", kind="race")
    club.sync([club.dana, club.eli])
    club.dana.attest(claim_id)
    club.dana.send()
    text = page(browser, url("claim", club, claim_id))
    assert "Verified by Dana, trusted for race" in text
    assert "Trusted for race" in text


def test_pages_of_a_thread_without_achievements_and_bad_ids(browser, club):
    chat = messaging.conversation_create(name="Plain", my_name="Alice")
    for name in ("challenges", "witnesses", "settings"):
        assert browser.get(url(name, chat)).status_code == 404
    assert browser.get(url("claim", club, "f" * 32)).status_code == 404
    assert browser.get(url("witness", club, "e" * 64)).status_code == 404
    assert browser.get(reverse("identity:achievements", args=["0" * 64])).status_code == 404
    assert Claim.objects.using(club.alias).count() == 0


@pytest.mark.anyio
async def test_the_claim_page_turns_verified_live(owner_user, club):
    claim_id = await database_sync_to_async(club.dana.claim)("Soloed the arete")
    await database_sync_to_async(club.dana.send)()
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    on_claim = socket(f"/ws/identity/{club.thread.id}/{claim_id}/", cookies=cookies)
    on_list = socket(f"/ws/identity/{club.thread.id}/", cookies=cookies)
    assert (await on_claim.connect())[0]
    assert (await on_list.connect())[0]
    first = await on_claim.receive_from(timeout=5)
    assert first.startswith('<p id="claim-badge" class="claim-state" hx-swap-oob="true">')
    assert "Waiting for witnesses (0 of 2)" in words(first)
    assert '<section class="card" id="attestations"' in first
    assert (await on_list.receive_from(timeout=5)).startswith('<div id="claims" hx-swap-oob')

    def two_witnesses() -> None:
        club.sync([club.eli, club.fay])
        club.eli.attest(claim_id)
        club.fay.attest(claim_id)
        club.sync([club.eli, club.fay])

    await database_sync_to_async(two_witnesses)()
    await get_channel_layer().group_send(live_group(club.thread.thread), {"type": "thread.changed"})
    while "Verified by 2 witnesses" not in words(html := await on_claim.receive_from(timeout=5)):
        pass
    assert "Eli" in html
    assert "Fay" in html
    while "Verified by 2 witnesses" not in words(await on_list.receive_from(timeout=5)):
        pass
    await on_claim.disconnect()
    await on_list.disconnect()
    anonymous = socket(f"/ws/identity/{club.thread.id}/", cookies=None)
    assert await anonymous.connect() == (False, 4403)
    on_challenges = socket(f"/ws/identity/{club.thread.id}/challenges/", cookies=cookies)
    assert (await on_challenges.connect())[0]
    assert "No challenges yet" in words(await on_challenges.receive_from(timeout=5))
    await on_challenges.disconnect()
    plain = await database_sync_to_async(messaging.conversation_create)(
        name="Plain", my_name="Alice"
    )
    closed = socket(f"/ws/identity/{plain.id}/", cookies=cookies)
    assert await closed.connect() == (False, 4404)


def test_a_duel_and_a_challenge_decided_by_poll(browser, club):
    duel = {"defendant": club.eli.member, "feat": "Race me up the slab", "mode": "judges"}
    refused = browser.post(url("challenges", club), duel)
    assert refused.status_code == 400
    assert "Name at least one judge, or let a poll decide." in looks_right(refused.content.decode())
    text = flashed(browser, url("challenges", club), {**duel, "judges": [club.dana.member]})
    made = "Your challenge is made: it waits for the member you challenged to accept the judges."
    assert made in text
    assert "defendant" not in text.casefold()  # the page and its form: people's words
    assert "You challenged Eli to a duel" in text
    assert "Judges: Dana" in text
    refused = browser.post(url("challenges", club), {**duel, "judges": [club.eli.member]})
    assert refused.status_code == 400  # the defendant cannot judge: the service says so
    assert "judge" in looks_right(refused.content.decode()).lower()
    # A verified claim challenged by a poll: the poll opens in the Polls tab.
    claim_id = club.eli.claim("Fastest on the slab")
    club.sync([club.eli, club.fay, club.gus])
    club.fay.attest(claim_id)
    club.gus.attest(claim_id)
    club.sync([club.fay, club.gus])
    form = {"claim": claim_id, "feat": "Show us", "mode": "poll"}
    text = flashed(browser, url("claim_challenge", club, claim_id), form)
    assert "its poll is open in the Polls tab" in text
    assert "Decided by a poll of the other members" in text
    assert "The poll decides" in text
    html = browser.get(url("challenges", club)).content.decode()
    assert re.search(r'href="/node/threads/[0-9a-f]+/polls/[0-9a-f]+/">Its poll', html)


def test_the_subject_downloads_a_verified_claims_credential(browser, club):
    claim_id = claim_through_form(browser, club, "Crossed the glacier")
    answer = browser.get(url("credential", club, claim_id))
    assert answer.status_code == 302  # not verified yet: back to the claim, in words
    text = page(browser, answer["Location"])
    assert "No credential:" in text
    club.sync([club.eli, club.fay])
    club.eli.attest(claim_id)
    club.fay.attest(claim_id)
    club.sync([club.eli, club.fay])
    answer = browser.get(url("credential", club, claim_id))
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    assert answer["Content-Disposition"] == 'attachment; filename="crossed-the-glacier.json"'
    made = json.loads(answer.content)
    assert made["credential"]["type"][-1] == "OpenBadgeCredential"
    assert len(made["endorsements"]) == 2


def test_home_says_what_waits_for_this_member(browser, club):
    from apps.identity import home

    assert home.waiting(club.thread) == []
    claim_id = club.eli.claim("Led the north face")
    club.eli.send()
    assert home.waiting(club.thread) == ["1 claim waiting for your word"]
    club.eli.receive()
    club.eli.challenge(defendant=club.me, feat="Do it again", judges=[club.dana.member])
    club.eli.send()
    assert home.waiting(club.thread) == [
        "1 claim waiting for your word",
        "1 challenge waiting for you",
    ]
    home_page = page(browser, reverse("core:dashboard"))
    assert "1 claim waiting for your word" in home_page
    assert "1 challenge waiting for you" in home_page
    flashed(browser, url("attest", club, claim_id), {"verdict": "witnessed"})
    assert home.waiting(club.thread) == ["1 challenge waiting for you"]


def test_accept_dispute_challenge_back_and_a_pdf_to_download(browser, club):
    # Eli challenges Alice to a duel judged by Dana; she accepts on her page.
    club.eli.challenge(defendant=club.me, feat="Race me to the hut", judges=[club.dana.member])
    club.eli.send()
    challenge_id = Challenge.objects.using(club.alias).get().pk.hex
    text = page(browser, url("challenges", club))
    assert "Eli challenged you to a duel" in text
    assert "Waiting for you to accept" in text
    text = flashed(browser, url("challenge_accept", club, challenge_id))
    assert "You accepted the challenge and its judges" in text
    assert "Judging: 0 of 1 judges have said" in text
    text = flashed(browser, url("challenge_accept", club, challenge_id))
    assert "You did not accept:" in text
    # Dana's claim with a PDF: Alice disputes it; the file downloads, never shown inline.
    pdf = SimpleUploadedFile("diploma.pdf", b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n<<>>\nendobj\n")
    claim_id = claim_through_form(browser, club, "Passed the guide's exam")
    club.sync([club.dana])
    club.dana.attest(claim_id)
    club.dana.send()
    mine = browser.post(
        url("achievements", club), {"kind": "race", "title": "With a diploma", "evidence": [pdf]}
    )
    assert mine.status_code == 302
    pdf_claim = mine["Location"].rstrip("/").rsplit("/", 1)[1]
    html = browser.get(url("claim", club, pdf_claim)).content.decode()
    assert f'<a href="{url("evidence", club, pdf_claim, "0")}" download>diploma.pdf</a>' in html
    assert browser.get(url("preview", club, pdf_claim, "0")).status_code == 404
    got = browser.get(url("evidence", club, pdf_claim, "0"))
    assert got["Content-Type"] == "application/octet-stream"
    assert got["Content-Disposition"].startswith("attachment;")
    club.dana.receive()
    other = club.dana.claim("Soloed the ridge")
    club.dana.send()
    text = flashed(browser, url("attest", club, other), {"verdict": "disputed", "note": "Fog"})
    assert "You disputed this claim" in text
    assert "You dispute it “Fog”" in text
    assert "Waiting for witnesses (0 of 2)" in text


def test_a_won_challenge_is_challenged_back(browser, club):
    claim_id = club.eli.claim("Fastest on the slab")
    club.sync([club.eli, club.fay, club.gus])
    club.fay.attest(claim_id)
    club.gus.attest(claim_id)
    club.sync([club.fay, club.gus])
    club.dana.receive()
    first = club.dana.challenge(
        defendant=club.eli.member, claim=claim_id, judges=[club.me], feat="Again, faster"
    )
    club.dana.send()
    club.eli.receive()
    club.eli.accept(first)
    club.eli.send()
    text = flashed(browser, url("challenge_judge", club, first), {"winner": "challenger"})
    assert "Dana won: the claim is overturned" in text  # this node wrote the outcome
    assert "Overturned" in page(browser, url("claim", club, claim_id))
    # Alice (not the winner) answers Dana's won challenge.
    text = page(browser, url("challenges", club))
    assert "Challenge back" in text
    form = page(browser, url("challenges", club) + f"?against={first}")
    assert "If you win, the challenge you answer is undone." in form
    # Dana (its winner), Eli (the claim's subject), Fay and Gus (its witnesses) cannot judge.
    assert "Nobody in this thread can judge it." in form
    back = {"against": first, "feat": "Dana cheated", "mode": "poll"}
    text = flashed(browser, url("challenges", club), back)
    assert "You challenged Dana back" in text
    assert "Decided by a poll of the other members" in text
