"""What a conversation replicates. Who wrote a row and when is not a column: it is the signed op
that inserted it (``sereus_rowevents``), so nobody can post in another member's name or date a
message into the past (see ``selectors``)."""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_TEXT = 8000  # characters; a message is a message, files go as attachments
MAX_NAME = 80
MAX_EMOJI = 16


class Message(ReplicatedModel):
    text = models.TextField()
    # The message this one answers (same thread); not a foreign key: it may arrive later.
    reply_to = models.UUIDField(null=True, blank=True)


class Reaction(ReplicatedModel):
    message = models.UUIDField(db_index=True)
    emoji = models.CharField(max_length=MAX_EMOJI)


class Profile(ReplicatedModel):
    """The name a member shows in this conversation (the newest one a member wrote counts)."""

    name = models.CharField(max_length=MAX_NAME)


class Receipt(ReplicatedModel):
    """How far a member has read: the cursor (op stamp) of the newest message they have seen.
    One row per member, theirs alone to move (the policy's own-rows rule)."""

    read_up_to = models.CharField(max_length=128)


class Attachment(ReplicatedModel):
    """A file sent with a message: what a member needs to fetch and open it (the chunks travel
    apart, see ``apps.core.blobs``). Whatever a hostile member writes here is checked before
    use: a description that does not parse shows as a damaged attachment."""

    message = models.UUIDField(db_index=True)
    name = models.CharField(max_length=200)
    mime = models.CharField(max_length=100)
    size = models.BigIntegerField()
    key = models.CharField(max_length=64)  # hex
    chunks = models.TextField()  # hex chunk hashes, concatenated
