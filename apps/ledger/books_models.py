"""What the personal ledger ("books") replicates: its entries, in the one-person books thread
(``books_policy``) that only its owner writes and that the owner's devices replicate.

The table is plain last-writer-wins, not ordered: nobody else writes it, so there is nothing
for replicas to judge beyond the policy. An entry's key ("chit:<id>", "csv:<hash>") decides its
row id (``books_services.entry_id``), so writing the same key twice, on any of the owner's
devices, is the same row: an import done twice adds nothing. The key is not a UNIQUE column
because replicated tables allow no uniqueness but the primary key (``apps.core.replicated``).
"""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_KEY = 140  # "csv:" + a hash, "chit:" + a row id, with room (books._KEY allows 128 after ":")
MAX_TEXT = 500  # books.MAX_TEXT


class Entry(ReplicatedModel):
    """One entry of the books: a day, what it was, and its postings, which add up to zero per
    commodity (``books.entry_check`` runs before every write)."""

    SOURCES = (("chit", "tally payment"), ("csv", "bank statement"))

    key = models.CharField(max_length=MAX_KEY, db_index=True)
    day = models.DateField()
    narration = models.CharField(max_length=MAX_TEXT, blank=True, default="")
    payee = models.CharField(max_length=MAX_TEXT, blank=True, default="")
    # JSON: [[account, milli-units, commodity], ...]; milli-units keep sums exact.
    postings = models.TextField()
    source = models.CharField(max_length=8, choices=SOURCES)
    # A chit's tally thread (hex id): a payment the tally turned over later (a concurrent one
    # came first) is found and taken out of the books. Empty for a bank row.
    origin = models.CharField(max_length=64, blank=True, default="", db_index=True)

    class Meta:
        verbose_name = "books entry"
        verbose_name_plural = "books entries"
