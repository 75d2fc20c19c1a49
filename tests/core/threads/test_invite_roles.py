"""Invites offer the thread app's ordinary member role first (least privilege: nobody is made an
admin unless the inviter asks for it), in the page form and the API; an app that names no such
role gets the least role that may write; the open invites are listed in words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from apps.core.thread.policy import (
    ADMIN,
    OWNER,
    READER,
    WRITER,
    Policy,
    RoleRules,
    default_policy,
    member_role,
)
from apps.core.threads import services
from apps.core.threads.invite_words import expires_words, reach_words
from tests.core.threads.test_admin_and_pages import owner_browser  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


def create(client: Client, thread_id: str, **fields) -> dict:
    response = client.post(
        f"/api/v1/threads/{thread_id}/invites/",
        {"expires_in": 600, **fields},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize("app", ["default", "messaging"])
def test_the_api_makes_ordinary_members_unless_told_otherwise(owner_browser, node, app):  # noqa: F811
    thread = services.thread_create(name="Club", app=app)
    assert create(owner_browser, thread.id)["role"] == WRITER
    assert create(owner_browser, thread.id, role=ADMIN)["role"] == ADMIN
    # A link for several people: a role such a link may grant (a plain thread's: reader).
    several = create(owner_browser, thread.id, uses=None)["role"]
    assert several == (READER if app == "default" else WRITER)


def test_the_form_offers_the_member_role_first_and_only_roles_one_may_invite_at(
    owner_browser,  # noqa: F811
    thread,
):
    page = owner_browser.get(f"/node/threads/{thread.id}/people/").content.decode()
    select = re.search(r'<select name="role".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option value="(\w+)"( selected)?>([^<]*)</option>', select)
    assert [(value, bool(chosen)) for value, chosen, _ in options] == [
        (ADMIN, False),
        (WRITER, True),
        (READER, False),
    ]
    assert [words for *_, words in options] == [
        "Admin (reads, writes, invites and removes people)",
        "Writer (reads and writes)",
        "Reader (reads only)",
    ]
    # Who it is for comes first.
    assert page.index("Who is it for?") < page.index('name="role"')


def test_an_app_without_a_member_role_gets_the_least_role_that_writes():
    policy = default_policy()
    offered = [ADMIN, WRITER, READER]
    assert member_role("no_such_app", policy, offered) == WRITER
    assert member_role("no_such_app", policy, [ADMIN, READER]) == ADMIN
    assert member_role("no_such_app", policy, [READER]) == READER
    assert member_role("no_such_app", policy, []) is None
    voters = Policy(roles={**policy.roles, "voter": RoleRules(rank=20, tables={"vote": {}})})
    assert member_role("no_such_app", voters, ["voter", READER]) == READER
    assert OWNER not in offered


def test_invites_in_words():
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert expires_words(now + timedelta(days=6, hours=23), now) == "expires in 6 days"
    # Just made for 7 days, or for 1 hour: said as chosen, not one unit less.
    assert expires_words(now + timedelta(days=7, seconds=-5), now) == "expires in 7 days"
    assert expires_words(now + timedelta(hours=1, seconds=-5), now) == "expires in 1 hour"
    assert expires_words(now + timedelta(hours=1), now) == "expires in 1 hour"
    assert expires_words(now + timedelta(seconds=30), now) == "expires in less than a minute"
    assert expires_words(now, now) == "expired"
    assert reach_words(1, 0) == "for one person"
    assert reach_words(10, 3) == "7 of 10 places left"
    assert reach_words(None, 4) == "for anyone with the link, 4 joined so far"
