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
    intent = models.UUIDField(null=True, blank=True)  # the chit this one sends again, if any

    class Meta:
        verbose_name = "chit"


from apps.ledger.books_models import Entry as BookEntry  # noqa: E402, F401
