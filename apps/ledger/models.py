"""What a tally replicates. Every table is ordered (``rules.py`` judges each row in the thread's
order on every replica). Who wrote a row is never a column a writer fills in and others trust:
a chit's id names its author (``apps.core.thread.rowid``), and the rules check that the payer
column is that author."""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_MEMO = 500
MAX_REFERENCE = 200
MAX_COMMENT = 1000


class Contract(ReplicatedModel):
    """The tally's terms, one row (``rules.CONTRACT_ID``): its unit and the credit each side
    gives, proposed by the owner, named by both parties and signed by both before any chit
    counts. Never changed once both are named."""

    unit = models.TextField()  # JSON of ``amounts.unit_data``
    owner_limit = models.BigIntegerField()  # credit the owner gives the partner, milli-units
    partner_limit = models.BigIntegerField()  # credit the partner gives the owner
    comment = models.TextField(blank=True, default="")
    parties = models.BinaryField()  # member keys: the owner's, then the partner's once joined

    class Meta:
        verbose_name = "tally contract"


class Signature(ReplicatedModel):
    """A party's signature of the contract as it stands (``apps.core.thread.countersign``)."""

    target = models.UUIDField()
    digest = models.BinaryField()
    signer = models.BinaryField()
    sig = models.BinaryField()

    class Meta:
        verbose_name = "contract signature"


class Chit(ReplicatedModel):
    """A chit, written once by its author and never changed.

    ``payment``, ``limit`` and ``close`` chits form the chain: each names the one before
    (``prev``; the contract for the first) and carries the tally's state after it (running
    balance, both limits, whether it is closing, its place). An ``invoice`` asks the other side
    for a payment and stands beside the chain; a payment that answers it names it."""

    kind = models.CharField(max_length=8)  # payment, invoice, limit, close
    payer = models.BinaryField(null=True)  # a payment's author (member key)
    unit = models.CharField(max_length=32)  # the contract's unit code, which never changes
    amount = models.BigIntegerField(default=0)  # milli-units; a limit chit's new limit
    memo = models.TextField(blank=True, default="")
    reference = models.CharField(max_length=MAX_REFERENCE, blank=True, default="")
    invoice = models.UUIDField(null=True, blank=True, db_index=True)  # the invoice it pays
    prev = models.UUIDField(null=True, blank=True, db_index=True)  # chain chits only
    seq = models.IntegerField(default=0)  # its place in the chain, from 1
    balance = models.BigIntegerField(default=0)  # after it, from the owner's side (+: owed to them)
    owner_limit = models.BigIntegerField(default=0)  # the limits in force after it
    partner_limit = models.BigIntegerField(default=0)
    closing = models.BooleanField(default=False)  # a close request stands
    owner_reserved = models.BigIntegerField(default=0)  # held for pending lifts, after it
    partner_reserved = models.BigIntegerField(default=0)
    intent = models.UUIDField(null=True, blank=True)  # the chit this one sends again, if any
    # A lift's chits (reserve, lift, release): the lift, its referee's key, its deadline (the
    # referee's clock, milliseconds) and the referee's signature of its decision.
    lift = models.UUIDField(null=True, blank=True, db_index=True)
    referee = models.BinaryField(null=True)
    deadline = models.BigIntegerField(default=0)
    sig = models.BinaryField(null=True)

    class Meta:
        verbose_name = "chit"


class LiftMessage(ReplicatedModel):
    """A lift's message between the two parties of a tally on its route (``lifts.py``): a
    request to carry it on ("seek"), an acknowledgment of a reservation ("ack"), or that it
    cannot go on ("fail"). Written once; what counts is the chain chits, never these."""

    lift = models.CharField(max_length=32, db_index=True)
    kind = models.CharField(max_length=8)
    body = models.TextField(default="{}")  # JSON, checked by the node that reads it

    class Meta:
        verbose_name = "lift message"


class Lift(models.Model):
    """A lift this node started, and referees (node-local: never replicated). Its steps live in
    the tallies on its route, as chits and lift messages."""

    class State(models.TextChoices):
        SEEKING = "seeking", "looking for a way around"
        COMMITTED = "committed", "cleared"
        VOIDED = "voided", "called off"

    id = models.CharField(primary_key=True, max_length=32)  # hex
    amount = models.BigIntegerField()  # milli-units
    unit = models.CharField(max_length=32)
    first = models.CharField(max_length=64)  # the tally it starts in (this party owes there)
    last = models.CharField(max_length=64)  # the tally it comes back by (owed to this party)
    deadline = models.BigIntegerField()  # milliseconds since 1970, this node's clock
    state = models.CharField(max_length=10, choices=State.choices, default=State.SEEKING)
    reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"lift {self.id[:8]}"


class LiftSettings(models.Model):
    """One row: whether this node carries lifts through its tallies, and how much at most."""

    enabled = models.BooleanField(default=True)
    most = models.BigIntegerField(null=True, blank=True)  # milli-units per lift; None: no cap

    def __str__(self) -> str:
        return "lift settings"


class NotSent(models.Model):
    """A chit of this party's that another, written at once on the other side, came before,
    and that no longer fit when its node sent it again: kept with the reason, for its author
    (node-local)."""

    thread = models.CharField(max_length=64, db_index=True)
    chit = models.CharField(max_length=32)
    kind = models.CharField(max_length=8)
    amount = models.BigIntegerField()
    memo = models.TextField(blank=True, default="")
    reason = models.CharField(max_length=300)
    written_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["thread", "chit"], name="not_sent_once")]

    def __str__(self) -> str:
        return f"not sent {self.chit[:8]}"


from apps.ledger.books_models import Entry as BookEntry  # noqa: E402, F401
