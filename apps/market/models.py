"""What the market replicates (ADR 22), and what a node keeps for itself.

A **shop** is a thread of the ``shop`` shape: the seller (its owner) and staff write listings;
customers, who joined with the shop's open link, make offers and bid; an index joins with the
``indexer`` role and writes nothing. A **deal** is a thread of its own between the buyer and the
seller (an escrow agent and a shipper may join it). Every table the rules judge is ordered
(``rules.py`` and ``deal_rules.py``), so every replica decides alike. Who wrote a row is never a
column a writer fills in and others trust: a row's id names its author
(``apps.core.thread.rowid``).

Amounts are integers in minor units of the listing's currency (cents for EUR, yen for JPY).
"""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_NAME = 100
MAX_ABOUT = 2_000
MAX_LINK = 4_000
MAX_MESSAGE = 2_000


# -- the shop thread --------------------------------------------------------------------------


class Shop(ReplicatedModel):
    """The shop's one row (``rules.SHOP_ID``), written by its owner: what it is called, what it
    says about itself, and the open link customers join with (an index serves this link with
    its answers, so a buyer can follow a shop it found)."""

    name = models.CharField(max_length=MAX_NAME)
    about = models.TextField(blank=True, default="")
    link = models.TextField(blank=True, default="")  # the customers' open invite link

    class Meta:
        verbose_name = "shop"


class Listing(ReplicatedModel):
    """A listing, as ``listing_shape.listing_shape`` reads it. Its terms (price, currency,
    shipping, auction) cannot change once it has a bid; it is never deleted (withdrawn)."""

    title = models.CharField(max_length=140)
    summary = models.CharField(max_length=300, blank=True, default="")
    description = models.TextField(blank=True, default="")  # Markdown
    price = models.BigIntegerField()  # minor units; an auction's start price
    currency = models.CharField(max_length=3)  # ISO 4217
    category = models.CharField(max_length=40)
    tags = models.TextField(default="[]")  # JSON list of words
    place = models.CharField(max_length=120, blank=True, default="")
    lat = models.FloatField(null=True, blank=True)
    lon = models.FloatField(null=True, blank=True)
    quantity = models.IntegerField(default=1)  # in stock, offers accepted are taken from it
    condition = models.CharField(max_length=12)
    status = models.CharField(max_length=10)  # draft, active, sold, withdrawn
    shipping = models.TextField(default="[]")  # JSON list of {region, price, days}
    auction = models.TextField(blank=True, default="")  # JSON of the auction's terms, or ""

    class Meta:
        verbose_name = "listing"


class Photo(ReplicatedModel):
    """A photo of a listing (its chunks travel apart, ``apps.core.blobs``)."""

    listing = models.UUIDField(db_index=True)
    position = models.IntegerField(default=0)
    name = models.CharField(max_length=200)
    mime = models.CharField(max_length=100)
    size = models.BigIntegerField()
    key = models.CharField(max_length=64)  # hex
    chunks = models.TextField()  # hex chunk hashes, concatenated
    removed = models.BooleanField(default=False)

    class Meta:
        verbose_name = "listing photo"


class Offer(ReplicatedModel):
    """A customer's offer on a listing, citing the listing's terms as they read them
    (``version``). Written once."""

    listing = models.UUIDField(db_index=True)
    version = models.CharField(max_length=64)  # ``rules.terms_version`` of the listing
    price = models.BigIntegerField()  # for the whole quantity, minor units
    quantity = models.IntegerField(default=1)
    message = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "offer"


class Bid(ReplicatedModel):
    """A bid in a listing's auction, citing its terms. Written once; the rules decide whether
    it counts (beats the best by the increment, before the end in force)."""

    listing = models.UUIDField(db_index=True)
    version = models.CharField(max_length=64)
    amount = models.BigIntegerField()

    class Meta:
        verbose_name = "bid"


class Close(ReplicatedModel):
    """The end of a listing's auction, written by the seller's node once the end in force has
    passed: a bid its author had not seen is refused everywhere (a core close, ADR 15). It
    states the winner and the price the bids before it give."""

    scope = models.UUIDField(db_index=True)  # the listing (the core's close scope column)
    winner = models.BinaryField(null=True)  # member key of the best bidder, if the reserve was met
    price = models.BigIntegerField(null=True)

    class Meta:
        verbose_name = "auction close"


class Accept(ReplicatedModel):
    """The seller accepts an offer, or the winner of a closed auction: a deal thread is opened,
    and its invite travels sealed to the buyer's member key (only the buyer can open it)."""

    listing = models.UUIDField(db_index=True)
    offer = models.UUIDField(null=True, blank=True, db_index=True)  # None for an auction
    buyer = models.BinaryField()  # member key in the shop
    price = models.BigIntegerField()
    quantity = models.IntegerField(default=1)
    deal = models.CharField(max_length=64)  # the deal thread's id, hex
    invite = models.BinaryField()  # the deal's invite link, sealed to the buyer

    class Meta:
        verbose_name = "accepted offer"


class Sale(ReplicatedModel):
    """How a deal ended, recorded in the shop by the seller's node: completed, cancelled or
    resolved, with the hash of the deal's final step. Ratings in the shop cite it."""

    accept = models.UUIDField(db_index=True)
    outcome = models.CharField(max_length=10)  # completed, cancelled, resolved
    completion = models.CharField(max_length=64)  # hex op hash of the final step

    class Meta:
        verbose_name = "sale"


class Rating(ReplicatedModel):
    """A buyer's rating of the seller, copied from the deal into the shop; counted only if it
    cites a completed sale of that buyer, once per sale (``ratings.py``)."""

    sale = models.UUIDField(db_index=True)
    overall = models.IntegerField()
    as_described = models.IntegerField(null=True, blank=True)
    communication = models.IntegerField(null=True, blank=True)
    shipping = models.IntegerField(null=True, blank=True)
    comment = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "rating"


# -- the deal thread ---------------------------------------------------------------------------


class Deal(ReplicatedModel):
    """The deal's one row (``deal_rules.DEAL_ID``), written by the seller's node when it opens
    the deal: what was agreed, and where (the shop, the listing, the accept row)."""

    shop = models.CharField(max_length=64)  # the shop thread's id, hex
    listing = models.UUIDField()
    accept = models.UUIDField()
    title = models.CharField(max_length=140)
    price = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    quantity = models.IntegerField(default=1)
    silent_days = models.IntegerField(default=14)

    class Meta:
        db_table = "market_deal_terms"  # named after the deal's rules app, "market_deal"
        verbose_name = "deal"


class Step(ReplicatedModel):
    """A step of the deal (``deal.py``): paid, shipped, received, completed, cancelled,
    disputed, resolved; each written only by its role, judged against the steps before it."""

    step = models.CharField(max_length=10)
    fields = models.TextField(default="{}")  # JSON: reference, carrier, tracking, reason, ...

    class Meta:
        db_table = "market_deal_step"  # named after the deal's rules app, "market_deal"
        verbose_name = "deal step"


class Release(ReplicatedModel):
    """A signature releasing the escrowed payment as the deal stands (countersigned: 2 of the
    buyer, the seller and the escrow agent)."""

    target = models.UUIDField()
    digest = models.BinaryField()
    signer = models.BinaryField()
    sig = models.BinaryField()

    class Meta:
        db_table = "market_deal_release"  # named after the deal's rules app, "market_deal"
        verbose_name = "escrow release"


class DealMessage(ReplicatedModel):
    """The deal's chat. Written once."""

    text = models.TextField()

    class Meta:
        db_table = "market_deal_message"  # named after the deal's rules app, "market_deal"
        verbose_name = "deal message"


class DealRating(ReplicatedModel):
    """A side's rating of the other after the deal ended, once per side."""

    overall = models.IntegerField()
    as_described = models.IntegerField(null=True, blank=True)
    communication = models.IntegerField(null=True, blank=True)
    shipping = models.IntegerField(null=True, blank=True)
    comment = models.TextField(blank=True, default="")

    class Meta:
        db_table = "market_deal_rating"  # named after the deal's rules app, "market_deal"
        verbose_name = "deal rating"


# -- this node only ------------------------------------------------------------------------------


class IndexSettings(models.Model):
    """One row: whether this node runs a market index for the shops that admit it."""

    enabled = models.BooleanField(default=False)
    name = models.CharField(max_length=MAX_NAME, blank=True, default="")

    def __str__(self) -> str:
        return "market index settings"


class KnownIndex(models.Model):
    """A market index this node asks when it searches (added from the index's link)."""

    peer = models.CharField(max_length=100, unique=True)  # libp2p peer id
    addrs = models.TextField(default="[]")  # JSON list of multiaddrs, as the link gave them
    name = models.CharField(max_length=MAX_NAME, blank=True, default="")
    added_at = models.DateTimeField(auto_now_add=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")

    def __str__(self) -> str:
        return f"index {self.name or self.peer[:12]}"


class ProxyBid(models.Model):
    """This member's maximum for an auction: it never leaves this node; the node bids just
    enough, up to it, when someone outbids it (``auction.proxy_next_bid``)."""

    thread = models.CharField(max_length=64)
    listing = models.CharField(max_length=32)
    maximum = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["thread", "listing"], name="proxy_once")]

    def __str__(self) -> str:
        return f"proxy bid {self.listing[:8]}"
