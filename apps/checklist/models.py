"""What a checklist replicates. Who added an item is not a column: its row id names its author
(``apps.core.thread.rowid``), the same owner every replica decides with. Items, closes and
approvals are ordered tables: every replica judges their rows one by one in the thread's order
(``rules.py``), so "one claimer per item" holds the same everywhere."""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_TEXT = 500  # characters: an item is a line of a list
MAX_LIST = 80
DEFAULT_LIST = "To do"
MEMBER_HEX = 64  # a member key, hex


class Item(ReplicatedModel):
    text = models.CharField(max_length=MAX_TEXT)
    # The list it is on: items are grouped by it, and a close row closes one (its scope).
    list = models.CharField(max_length=MAX_LIST, default=DEFAULT_LIST, db_index=True)
    claimed_by = models.CharField(max_length=MEMBER_HEX, blank=True, default="")  # member hex
    done = models.BooleanField(default=False)
    done_by = models.CharField(max_length=MEMBER_HEX, blank=True, default="")  # member hex

    class Meta:
        verbose_name = "checklist item"


class Close(ReplicatedModel):
    """Closes a list (``scope``: its name): every replica refuses the changes to that list's
    items that the close's author had not seen. Written once, never withdrawn."""

    scope = models.CharField(max_length=MAX_LIST)

    class Meta:
        verbose_name = "list close"


class Approval(ReplicatedModel):
    """An admin's signature over an item's content (``rules.item_digest``): the item counts as
    approved while two admins' signatures match it as it stands."""

    item = models.UUIDField(db_index=True)
    digest = models.BinaryField()
    signer = models.BinaryField()  # the admin's member key
    sig = models.BinaryField()

    class Meta:
        verbose_name = "approval"


class Plan(ReplicatedModel):
    """A close planned for a time: the author's node writes the close then (``tasks.py``). The
    time is shown to the members, never used by a rule."""

    list = models.CharField(max_length=MAX_LIST)
    at = models.DateTimeField()

    class Meta:
        verbose_name = "planned close"
