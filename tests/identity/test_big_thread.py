"""A club with many claims (bench/identity.py's rows, seeded smaller by direct SQL): the claims
list a page at a time on the page and in the API (newest first, links that keep the filter,
states worked out for the page's claims only), one witness's standing equal to what every
witness's computation says of them."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client

from apps.core.thread.rowid import member_tag
from apps.core.threads.registry import thread_database
from apps.identity import selectors, standing
from bench import identity as bench
from tests.identity.support import Club
from tests.identity.test_pages import looks_right, url

pytestmark = pytest.mark.django_db(transaction=True)

CLAIMS = 130  # more than two pages of 50


def seed(club: Club, **sizes: int) -> dict[str, list[tuple]]:
    """The bench's rows of a busy club put into the club's thread file (no ops)."""
    rows = bench._rows(random.Random(19), **sizes)
    database = thread_database(club.thread.thread)
    connections[database.alias].close()
    bench._fill(Path(database.path), rows)
    return rows


def newest_first(rows: dict[str, list[tuple]]) -> list[str]:
    return sorted((c[0] for c in rows["identity_claim"]), reverse=True)


@pytest.fixture
def big(club: Club) -> tuple[Club, dict[str, list[tuple]]]:
    rows = seed(
        club,
        claims_n=CLAIMS,
        attestations_n=CLAIMS * 5,
        members_n=30,
        retracted_n=40,
        challenged_n=12,
        flag_after=2,
    )
    return club, rows


def claim_links(html: str) -> list[str]:
    return re.findall(r'href="/node/threads/[0-9a-f]+/achievements/([0-9a-f]{32})/"', html)


def test_the_achievements_page_shows_a_page_of_claims_with_links_both_ways(
    browser: Client, big, monkeypatch
):
    club, rows = big
    ordered = newest_first(rows)
    asked: list[list[str]] = []
    real = standing.claim_states

    def claim_states(alias, claim_ids=None, **kwargs):
        asked.append(list(claim_ids) if claim_ids is not None else ["every claim"])
        return real(alias, claim_ids, **kwargs)

    monkeypatch.setattr(standing, "claim_states", claim_states)
    first = browser.get(url("achievements", club)).content.decode()
    looks_right(first)
    shown = claim_links(first)
    assert shown == ordered[: selectors.PAGE]
    # The states of this page's claims only, never of the thread's every claim.
    assert asked == [shown]
    assert "Newer claims" not in first
    older = re.search(r'<a href="\?before=([0-9a-f]{32})" rel="next">', first)
    assert older is not None
    assert older.group(1) == ordered[selectors.PAGE - 1]

    second = browser.get(url("achievements", club) + f"?before={older.group(1)}").content.decode()
    looks_right(second)
    assert claim_links(second) == ordered[selectors.PAGE : 2 * selectors.PAGE]
    newer = re.search(r'<a href="\?after=([0-9a-f]{32})" rel="prev">', second)
    assert newer is not None
    back = browser.get(url("achievements", club) + f"?after={newer.group(1)}").content.decode()
    assert claim_links(back) == ordered[: selectors.PAGE]

    last_cursor = ordered[2 * selectors.PAGE - 1]
    last = browser.get(url("achievements", club) + f"?before={last_cursor}").content.decode()
    assert claim_links(last) == ordered[2 * selectors.PAGE :]
    assert 'rel="next"' not in last
    assert 'rel="prev"' in last
    # An edited link is the first page, not an error.
    odd = browser.get(url("achievements", club) + "?before=nonsense")
    assert odd.status_code == 200
    assert claim_links(odd.content.decode()) == ordered[: selectors.PAGE]


def test_a_members_claims_a_page_at_a_time_keep_the_filter(browser: Client, big):
    club, rows = big
    tags = {tag: member.hex() for tag, member in rows["sereus_members"]}
    by = Counter(c[0][20:] for c in rows["identity_claim"])
    tag, count = by.most_common(1)[0]
    subject = tags[tag]
    theirs = [c for c in newest_first(rows) if c[20:] == tag]
    page = selectors.claim_page(club.thread, subject=subject, limit=2)
    assert [c.id for c in page.claims] == theirs[:2]
    html = browser.get(url("achievements", club) + f"?subject={subject}").content.decode()
    text = looks_right(html)
    assert f"Only {selectors.member_names(club.thread)[subject]}'s claims" in text
    assert claim_links(html) == theirs[: selectors.PAGE]
    assert count <= selectors.PAGE  # one page of theirs: no link onwards
    assert 'rel="next"' not in html


def test_the_claims_api_pages_with_link_headers(browser: Client, big):
    club, rows = big
    ordered = newest_first(rows)
    api = f"/api/v1/threads/{club.thread.id}/claims/"
    first = browser.get(api, {"limit": 40})
    assert [c["id"] for c in first.json()] == ordered[:40]
    link = first["Link"]
    assert 'rel="prev"' not in link
    next_url = re.search(r'<([^>]+)>; rel="next"', link).group(1)
    assert "limit=40" in next_url
    assert f"before={ordered[39]}" in next_url
    second = browser.get(next_url.split("testserver", 1)[-1])
    assert [c["id"] for c in second.json()] == ordered[40:80]
    assert 'rel="prev"' in second["Link"]
    default = browser.get(api).json()
    assert len(default) == selectors.PAGE
    for bad in ({"before": "zz"}, {"limit": "0"}, {"limit": "many"}):
        refused = browser.get(api, bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"] == "invalid"


def test_one_witness_standing_equals_every_witness_computation(browser: Client, club: Club):
    seed(
        club,
        claims_n=400,
        attestations_n=2000,
        members_n=40,
        retracted_n=120,
        challenged_n=30,
        flag_after=3,
    )
    alias = club.alias
    everyone = standing.standing(alias)
    assert any(w.flagged for w in everyone.values())
    assert any(not w.flagged for w in everyone.values())
    for member, state in everyone.items():
        tags = [member_tag(bytes.fromhex(member)).hex()]
        assert standing.standing(alias, tags=tags) == {member: state}
    listed = {w.member: w for w in selectors.witnesses(club.thread)}
    busiest = max(everyone.values(), key=lambda w: (w.strikes, w.attested)).member
    for member in [busiest, *sorted(everyone)[:5]]:
        assert selectors.witness(club.thread, member) == listed[member]
    # Its page lists the same inputs the list does, and nobody else's.
    html = browser.get(url("witness", club, busiest)).content.decode()
    text = looks_right(html)
    assert str(listed[busiest].attested) in text
    assert browser.get(url("witness", club, "00" * 32)).status_code == 404
