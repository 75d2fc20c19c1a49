"""What identity replicates (ADR 26). Who wrote a row is never a column: its id names its author
(``apps.core.thread.rowid``). Ids that follow from what they are about (one attestation per
witness and claim, one acceptance per challenge, one judgement per judge and challenge, one
shared copy per member and field) are ``rowid.row_id_for(author, seed)`` with the seeds of
``formats.py``, so doing a thing twice is the same row, which the rules refuse to change.

Member keys (32 bytes) are stored as 64 hex digits, as voting stores its electorate."""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_NAME = 40  # a field's or kind's name (slug)
MAX_LABEL = 80
MAX_TEXT = 2000  # a profile field's value (text)
MAX_PHOTO = 400_000  # a photo field's value: a data: URL of at most ~290 KiB of image
MAX_TITLE = 120
MAX_DESCRIPTION = 4000
MAX_PLACE = 200
MAX_NOTE = 500
MAX_FEAT = 500
MAX_EVIDENCE = 10  # files a claim carries


# -- the profile thread ----------------------------------------------------------------------


class ProfileField(ReplicatedModel):
    """One field of the party's profile: a salted leaf (``formats.disclosure``). A new value
    gets a new salt, so a recipient of the old one learns nothing from the new leaf's digest."""

    name = models.CharField(max_length=MAX_NAME)  # name, photo, birth_date, ... or x-<slug>
    label = models.CharField(max_length=MAX_LABEL)  # what the person calls it
    value = models.TextField()  # text; a photo is a data: URL
    salt = models.CharField(max_length=32)  # base64url of 16 random bytes

    class Meta:
        verbose_name = "profile field"
        db_table = "identity_profile_field"


class ProfileShare(ReplicatedModel):
    """Field ``name`` is shared into ``thread`` (hex id) while ``active``; stopped, the node
    deletes its shared copy there and sends no more updates (copies already received stay)."""

    name = models.CharField(max_length=MAX_NAME)
    thread = models.CharField(max_length=64)
    thread_name = models.CharField(max_length=MAX_LABEL, blank=True, default="")
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "profile share"
        db_table = "identity_profile_share"


# -- any thread with the identity app ----------------------------------------------------------


class SharedField(ReplicatedModel):
    """A member's profile field as shared into this thread, with its proof: the field's leaf
    (``disclosure``), the profile's commitment (``commitment``: a JWS by the profile key over
    every leaf's digest) and the profile key's signature binding the profile to the member key
    that writes it here (``binding``), so no other member can pass it off as theirs."""

    name = models.CharField(max_length=MAX_NAME)
    disclosure = models.TextField()
    commitment = models.TextField()
    profile = models.CharField(max_length=64)  # the profile's public key, hex
    binding = models.CharField(max_length=128)  # hex of the profile key's signature

    class Meta:
        verbose_name = "shared profile field"
        db_table = "identity_shared_field"


class Kind(ReplicatedModel):
    """A kind of achievement the thread keeps (managers add and retire them)."""

    slug = models.CharField(max_length=MAX_NAME)
    label = models.CharField(max_length=MAX_LABEL)
    retired = models.BooleanField(default=False)

    class Meta:
        verbose_name = "achievement kind"


class Setting(ReplicatedModel):
    """The thread's rules for achievements, as a chain: each row has ``seq`` one above the
    previous, so the settings in force are the row with the highest ``seq`` on every replica."""

    seq = models.IntegerField()
    witnesses = models.IntegerField()  # k: distinct unflagged witnesses that verify a claim
    flag_after = models.IntegerField()  # overturned + retracted attestations that flag a witness

    class Meta:
        verbose_name = "identity setting"


class Authority(ReplicatedModel):
    """A member the thread trusts for one kind (a trainer, a school): one attestation of theirs
    verifies a claim of that kind. Managers add and revoke (``revoked``; never deleted)."""

    kind = models.CharField(max_length=MAX_NAME)
    member = models.CharField(max_length=64)
    revoked = models.BooleanField(default=False)

    class Meta:
        verbose_name = "trusted authority"


class Claim(ReplicatedModel):
    """An achievement its author (the subject) claims. Never edited: only withdrawn."""

    kind = models.CharField(max_length=MAX_NAME)
    title = models.CharField(max_length=MAX_TITLE)
    description = models.TextField(blank=True, default="")
    event_date = models.CharField(max_length=10, blank=True, default="")  # YYYY-MM-DD
    place = models.CharField(max_length=MAX_PLACE, blank=True, default="")
    # JSON list of {name, mime, size, key, chunks} (messaging's attachment description).
    evidence = models.TextField(default="[]")
    withdrawn = models.BooleanField(default=False)

    class Meta:
        verbose_name = "claim"


class Attestation(ReplicatedModel):
    """A witness's word on a claim (``witnessed`` or ``disputed``) over the claim's digest, with
    the witness's signed endorsement (``jws``, ``formats.endorsement_jws``), which an export
    carries and an outside verifier checks."""

    claim = models.UUIDField(db_index=True)
    digest = models.CharField(max_length=64)  # hex of ``formats.claim_digest``
    verdict = models.CharField(max_length=16)  # witnessed | disputed
    note = models.CharField(max_length=MAX_NOTE, blank=True, default="")
    jws = models.TextField()

    class Meta:
        verbose_name = "attestation"


class Retraction(ReplicatedModel):
    """A witness takes back an attestation of theirs (forward only: never undone)."""

    attestation = models.UUIDField(db_index=True)
    reason = models.CharField(max_length=MAX_NOTE, blank=True, default="")

    class Meta:
        verbose_name = "retraction"


class Challenge(ReplicatedModel):
    """A challenge of a claim, of a won challenge (``against``), or a duel (neither): the feat,
    the deadline (shown, never a rule), the defendant, and how it is decided: by ``judges``
    the defendant accepts, or by the thread's ``poll`` (a voting poll opened with it)."""

    claim = models.UUIDField(null=True, blank=True, db_index=True)
    against = models.UUIDField(null=True, blank=True)  # the challenge it challenges back
    defendant = models.CharField(max_length=64)  # member key, hex
    feat = models.CharField(max_length=MAX_FEAT)
    deadline = models.CharField(max_length=32, blank=True, default="")  # ISO date/time, shown
    mode = models.CharField(max_length=8)  # judges | poll
    judges = models.TextField(default="[]")  # JSON list of member keys (hex)
    poll = models.UUIDField(null=True, blank=True)

    class Meta:
        verbose_name = "challenge"


class Accept(ReplicatedModel):
    """The defendant accepts a challenge decided by judges (and so its judges)."""

    challenge = models.UUIDField(db_index=True)

    class Meta:
        verbose_name = "challenge acceptance"


class Judgement(ReplicatedModel):
    """A judge's verdict on a challenge: ``challenger`` or ``defendant`` wins."""

    challenge = models.UUIDField(db_index=True)
    winner = models.CharField(max_length=16)  # challenger | defendant
    note = models.CharField(max_length=MAX_NOTE, blank=True, default="")

    class Meta:
        verbose_name = "judgement"


class Outcome(ReplicatedModel):
    """A challenge's decision, written once by any member when the judges' majority or the
    closed poll decides it; the rules check it against them. A challenger who wins overturns
    the claim (or the challenge challenged back); a duel's winner gets it on record."""

    challenge = models.UUIDField(db_index=True)
    winner = models.CharField(max_length=16)  # challenger | defendant

    class Meta:
        verbose_name = "challenge outcome"
