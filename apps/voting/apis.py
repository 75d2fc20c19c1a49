"""The voting API (owner only, like the rest): a thread's polls, ballots and closes. Errors are
``{"error": code, "detail": message}``: 404 for an unknown thread or poll, 400 for bad input
(a malformed ballot says what is wrong), 403 when this member may not (not a voter, not the
poll's creator, the thread's policy), 409 when voting is not enabled, the poll is closed or
waits for its trustees, or a rule of the thread refuses the write."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_call, api_thread
from apps.core.threads.services import ThreadServiceError
from apps.voting import selectors, services
from apps.voting.models import MAX_DESCRIPTION, MAX_QUESTION
from apps.voting.shape import MAX_OPTIONS
from apps.voting.tally import METHODS, TIE_BREAK
from apps.voting.words import guarantees

VotingFailed = AppFailed
_call, _thread = api_call, api_thread


class RoundOutput(serializers.Serializer):
    counts = serializers.ListField(child=serializers.IntegerField())
    eliminated = serializers.ListField(
        child=serializers.IntegerField(), help_text="Options eliminated after this round."
    )
    exhausted = serializers.IntegerField(help_text="Ballots with no continuing option left.")


class ResultOutput(serializers.Serializer):
    final = serializers.BooleanField(help_text="The poll is closed: this is its result.")
    ballots = serializers.IntegerField()
    totals = serializers.ListField(
        child=serializers.IntegerField(),
        allow_null=True,
        help_text="Per option: votes, approvals, score sum, or the last round's counts.",
    )
    winner = serializers.IntegerField(allow_null=True, help_text="The winning option's index.")
    tied = serializers.ListField(
        child=serializers.IntegerField(), help_text="Options tied for the win before the tie-break."
    )
    quorum_met = serializers.BooleanField()
    stands = serializers.BooleanField(help_text="Closed, counted and the quorum met.")
    missing_trustees = serializers.IntegerField(
        help_text="Secret polls: partial decryptions still needed to count."
    )
    tie_break = serializers.CharField()


class TrusteeOutput(serializers.Serializer):
    member = serializers.CharField()
    name = serializers.CharField()
    key_ready = serializers.BooleanField()
    decrypted = serializers.BooleanField()


class PollOutput(serializers.Serializer):
    id = serializers.CharField()
    question = serializers.CharField()
    description = serializers.CharField()
    options = serializers.ListField(child=serializers.CharField())
    method = serializers.ChoiceField(list(METHODS))
    secret = serializers.BooleanField()
    roles = serializers.ListField(child=serializers.CharField(), help_text="The voting roles.")
    electorate = serializers.IntegerField(help_text="How many members may vote (frozen).")
    voters = serializers.ListField(child=serializers.CharField(), help_text="Their member keys.")
    quorum = serializers.IntegerField()
    results_visible = serializers.BooleanField()
    ends_at = serializers.DateTimeField(allow_null=True)
    creator = serializers.CharField()
    creator_name = serializers.CharField()
    state = serializers.ChoiceField(selectors.POLL_STATES)
    turnout = serializers.IntegerField()
    can_vote = serializers.BooleanField()
    voted = serializers.BooleanField()
    my_ballot = serializers.DictField(
        allow_null=True, help_text="Your named ballot; {} for a secret one cast."
    )
    threshold = serializers.IntegerField()
    trustees = TrusteeOutput(many=True)
    result = ResultOutput(allow_null=True, help_text="Null while hidden.")
    rounds = RoundOutput(many=True, allow_null=True, help_text="Ranked polls: every round.")
    counted_hash = serializers.CharField(
        allow_null=True, help_text="Hash of the counted ballots: compare across nodes."
    )
    guarantees = serializers.ListField(child=serializers.CharField())


def poll_body(poll: selectors.PollView) -> dict[str, Any]:
    shape, result = poll.shape, poll.result
    names = poll.names
    body: dict[str, Any] = {
        "id": poll.id,
        "question": shape.question,
        "description": poll.description,
        "options": list(shape.options),
        "method": shape.method,
        "secret": shape.secret,
        "roles": list(shape.roles),
        "electorate": poll.electorate,
        "voters": list(shape.electorate),
        "quorum": shape.quorum,
        "results_visible": shape.results_visible,
        "ends_at": poll.ends_at,
        "creator": poll.creator,
        "creator_name": poll.creator_name,
        "state": poll.state,
        "turnout": poll.turnout,
        "can_vote": poll.voter and poll.state == selectors.OPEN,
        "voted": poll.voted,
        "my_ballot": poll.my_ballot,
        "threshold": shape.threshold,
        "trustees": [
            {
                "member": member,
                "name": names.get(member, "a former member"),
                "key_ready": names_in(poll.dealt, names.get(member, "")),
                "decrypted": names_in(poll.decrypted, names.get(member, "")),
            }
            for member in shape.trustees
        ],
        "result": None,
        "rounds": None,
        "counted_hash": None,
        "guarantees": guarantees(shape),
    }
    if result is not None:
        tally = result.tally
        body["counted_hash"] = result.counted_hash
        body["result"] = {
            "final": result.final,
            "ballots": result.ballots,
            "totals": list(tally.totals) if tally else None,
            "winner": tally.winner if tally else None,
            "tied": list(tally.tied) if tally else [],
            "quorum_met": result.quorum_met,
            "stands": result.final and tally is not None and result.quorum_met,
            "missing_trustees": result.missing_trustees,
            "tie_break": TIE_BREAK,
        }
        if tally is not None and shape.method == "ranked":
            body["rounds"] = [
                {
                    "counts": list(r.counts),
                    "eliminated": list(r.eliminated),
                    "exhausted": r.exhausted,
                }
                for r in tally.rounds
            ]
    return body


def names_in(found: list[str], name: str) -> bool:
    return bool(name) and name in found


class PollInput(serializers.Serializer):
    question = serializers.CharField(max_length=MAX_QUESTION)
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION, required=False, allow_blank=True, default=""
    )
    options = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=2, max_length=MAX_OPTIONS
    )
    method = serializers.ChoiceField(list(METHODS), default="single")
    roles = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        help_text="Roles that vote; every role but readers if absent.",
    )
    quorum = serializers.IntegerField(min_value=0, required=False, default=0)
    results_visible = serializers.BooleanField(required=False, default=True)
    secret = serializers.BooleanField(required=False, default=False)
    trustees = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        help_text="Secret polls: the trustees' member keys (hex).",
    )
    threshold = serializers.IntegerField(
        min_value=2,
        required=False,
        allow_null=True,
        default=None,
        help_text="Secret polls: trustees needed to count (a majority of them if absent).",
    )
    ends_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Planned end: the creator's node closes the poll then.",
    )


class BallotInput(serializers.Serializer):
    choice = serializers.IntegerField(required=False, help_text="Single choice: the option.")
    choices = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Approval: the options."
    )
    ranking = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Ranked: best first."
    )
    scores = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Score: one per option, 0-5."
    )


def _poll(thread: Thread, poll_id: str) -> dict[str, Any]:
    found = selectors.poll(thread, poll_id)
    if found is None:
        raise VotingFailed(ThreadServiceError("not_found", "there is no such poll in this thread"))
    return poll_body(found)


class PollsApi(APIView):
    @extend_schema(responses=PollOutput(many=True), operation_id="polls_list")
    def get(self, request: Request, thread_id: str) -> Response:
        """The thread's polls, newest first."""
        thread = _thread(thread_id)
        services.polls_due(thread=thread)  # a planned close whose task was lost
        services.duties(thread=thread)  # a trustee's part the worker has not done yet
        return Response([poll_body(p) for p in selectors.polls(thread)])

    @extend_schema(
        request=PollInput,
        responses={201: PollOutput},
        operation_id="polls_open",
        description="Open a poll. Its voters are frozen now: the members holding the chosen "
        "roles. A secret poll (single or approval) names 2 to 20 trustees; voting starts once "
        "their nodes have set up its key.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        data = PollInput(data=request.data)
        data.is_valid(raise_exception=True)
        poll = _call(services.poll_open, thread=thread, **data.validated_data)
        return Response(_poll(thread, poll.id.hex), status=status.HTTP_201_CREATED)


class PollApi(APIView):
    @extend_schema(responses=PollOutput, operation_id="polls_get")
    def get(self, request: Request, thread_id: str, poll_id: str) -> Response:
        """A poll: its state, turnout, voters and, where it may be seen, its result."""
        thread = _thread(thread_id)
        services.polls_due(thread=thread)
        services.duties(thread=thread)
        return Response(_poll(thread, poll_id))


class BallotApi(APIView):
    @extend_schema(
        request=BallotInput,
        responses=PollOutput,
        operation_id="polls_vote",
        description="Cast or replace your ballot: {choice} (single), {choices} (approval), "
        "{ranking} (ranked, best first) or {scores} (score, one per option, 0 to 5).",
    )
    def put(self, request: Request, thread_id: str, poll_id: str) -> Response:
        thread = _thread(thread_id)
        if not isinstance(request.data, dict):
            raise VotingFailed(ThreadServiceError("invalid", "a ballot is a JSON object"))
        ballot = dict(request.data)
        _call(services.ballot_cast, thread=thread, poll_id=poll_id, ballot=ballot)
        return Response(_poll(thread, poll_id))

    @extend_schema(request=None, responses=PollOutput, operation_id="polls_unvote")
    def delete(self, request: Request, thread_id: str, poll_id: str) -> Response:
        """Withdraw your ballot while the poll is open."""
        thread = _thread(thread_id)
        _call(services.ballot_withdraw, thread=thread, poll_id=poll_id)
        return Response(_poll(thread, poll_id))


class CloseApi(APIView):
    @extend_schema(
        request=None,
        responses=PollOutput,
        operation_id="polls_close",
        description="Close the poll now (its creator): ballots this node had not received do "
        "not count on any node.",
    )
    def post(self, request: Request, thread_id: str, poll_id: str) -> Response:
        thread = _thread(thread_id)
        _call(services.poll_close, thread=thread, poll_id=poll_id)
        return Response(_poll(thread, poll_id))
