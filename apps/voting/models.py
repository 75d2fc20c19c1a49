"""What a poll replicates. Every table is ordered: each row is judged by every replica in the
thread's order (``rules.py``), so "one counted ballot per voter" and "nothing after the close"
hold the same everywhere. Who wrote a row is never a column: its id names its author
(``apps.core.thread.rowid``); ballots, closes, dealings and partial decryptions have ids that
follow from the poll and the author, so each author has at most one of each per poll."""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_QUESTION = 300
MAX_DESCRIPTION = 4000
MAX_OPTION = 200


class Poll(ReplicatedModel):
    """A poll as it opened. Never changed afterwards: the question, options, method, who votes
    (``electorate``: member keys, frozen when it opened) and, for a secret poll, its trustees."""

    question = models.CharField(max_length=MAX_QUESTION)
    description = models.TextField(blank=True, default="")
    options = models.TextField()  # JSON list of strings, 2 to 50
    method = models.CharField(max_length=16)  # single, approval, ranked, score
    roles = models.TextField()  # JSON list of the roles that vote
    electorate = models.TextField()  # JSON list of member keys (hex), frozen at opening
    quorum = models.IntegerField(default=0)  # ballots needed for the result to stand
    results_visible = models.BooleanField(default=True)  # live results before the close
    secret = models.BooleanField(default=False)
    trustees = models.TextField(default="[]")  # JSON list of member keys (hex), secret polls
    threshold = models.IntegerField(default=0)  # trustees needed to decrypt the result
    ends_at = models.DateTimeField(null=True, blank=True)  # planned end: shown, never a rule

    class Meta:
        verbose_name = "poll"


class Ballot(ReplicatedModel):
    """A voter's ballot; its id follows from the poll and the voter, so voting again replaces
    it. ``choice`` is the named ballot as JSON; ``sealed`` the encrypted one of a secret poll."""

    poll = models.UUIDField(db_index=True)  # the poll: what a close closes (its scope)
    choice = models.TextField(blank=True, default="")
    sealed = models.BinaryField(blank=True, default=b"")

    class Meta:
        verbose_name = "ballot"


class Close(ReplicatedModel):
    """The poll's creator closes it (``scope``: the poll): every replica refuses the ballots
    the creator had not seen. Written once, never withdrawn."""

    scope = models.UUIDField()
    ballots = models.IntegerField(default=0)  # how many the closer saw (shown; the rule is causal)

    class Meta:
        verbose_name = "poll close"


class Dealing(ReplicatedModel):
    """A trustee's part of a secret poll's key: commitments and the shares sealed to each
    trustee (``apps.voting.crypto``)."""

    poll = models.UUIDField(db_index=True)
    dealing = models.BinaryField()

    class Meta:
        verbose_name = "trustee key share"


class Partial(ReplicatedModel):
    """A trustee's partial decryption of a closed secret poll's sum, with its proofs."""

    poll = models.UUIDField(db_index=True)
    partial = models.BinaryField()

    class Meta:
        verbose_name = "partial decryption"
