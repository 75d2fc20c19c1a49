"""The outcome duty (``duties``) runs after ops that can decide a challenge (identity or voting
rows, or ops whose rows cannot be told), and is left alone by the others (a message)."""

from __future__ import annotations

import pytest

from apps.identity import duties
from apps.messaging import services as messaging
from tests.identity.support import Club

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_outcome_duty_runs_only_after_ops_that_can_decide_a_challenge(club: Club):
    duties.forget()
    thread = club.thread
    assert duties._deciding(thread)  # first look in this process: it cannot tell, so it runs
    assert not duties._deciding(thread)  # nothing new
    messaging.message_send(thread=thread, text="See you at the crag")
    assert not duties._deciding(thread)  # a message decides no challenge
    club.dana.claim("Climbed the north face")
    club.sync([club.dana])
    assert duties._deciding(thread)  # an identity row
    assert not duties._deciding(thread)
