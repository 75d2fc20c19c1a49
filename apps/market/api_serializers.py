"""What the market API takes and answers, for the schema and the checks of shape. The serializers
check types and lengths only: whether a price, a currency or a bid is acceptable is the
services' (and every replica's) to say, in words, so a negative price reaches them and comes
back as "The price must be more than zero."."""

from __future__ import annotations

from rest_framework import serializers

from apps.market import deal as deal_rules
from apps.market.listing_shape import CATEGORIES, CONDITIONS, STATUSES
from apps.market.models import MAX_ABOUT, MAX_MESSAGE, MAX_NAME

MINOR = "Minor units of the listing's currency (cents for EUR): 1250 is 12.50 EUR."


class Amount(serializers.IntegerField):
    """A whole number of minor units; true and false are not numbers here."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            raise serializers.ValidationError("An amount is a whole number of minor units.")
        return super().to_internal_value(data)


class ShopInput(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME)
    about = serializers.CharField(max_length=MAX_ABOUT, required=False, allow_blank=True)


class ShopScoreOutput(serializers.Serializer):
    count = serializers.IntegerField(help_text="Ratings counted (each cites a completed sale).")
    overall = serializers.CharField(allow_null=True, help_text="Average stars, like 4.5.")


class ShopLinksOutput(serializers.Serializer):
    customer = serializers.CharField(help_text="The open link customers join with.")
    indexer = serializers.CharField(help_text="The open link an index joins with.")


class ShopOutput(serializers.Serializer):
    thread = serializers.CharField()
    name = serializers.CharField()
    about = serializers.CharField()
    link = serializers.CharField(help_text="The customers' link, as the shop states it.")
    role = serializers.CharField(help_text="Your role: owner, staff, customer, indexer.")
    score = ShopScoreOutput()
    listings = serializers.IntegerField(help_text="Listings you can see.")
    links = ShopLinksOutput(required=False, help_text="For the shop's owner and staff only.")


class ShippingInput(serializers.Serializer):
    region = serializers.CharField(max_length=200)
    price = Amount(help_text=MINOR + " 0: free.")
    days = serializers.IntegerField()


class AuctionInput(serializers.Serializer):
    increment = Amount(help_text="Each bid beats the best by at least this. " + MINOR)
    reserve = Amount(required=False, allow_null=True, help_text="Below it nobody wins.")
    ends_at = serializers.DateTimeField(help_text="When bidding ends (ISO 8601).")
    soft_close_minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="A bid this close to the end moves the end by as many minutes.",
    )


class ListingInput(serializers.Serializer):
    title = serializers.CharField(max_length=1_000)
    summary = serializers.CharField(max_length=1_000, required=False, allow_blank=True)
    description = serializers.CharField(
        max_length=100_000, required=False, allow_blank=True, help_text="Markdown."
    )
    price = Amount(help_text="For one item; an auction's start price. " + MINOR)
    currency = serializers.CharField(max_length=10, help_text="ISO 4217, like EUR.")
    category = serializers.CharField(max_length=100, help_text=", ".join(CATEGORIES))
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    place = serializers.CharField(max_length=1_000, required=False, allow_blank=True)
    lat = serializers.FloatField(required=False, allow_null=True)
    lon = serializers.FloatField(required=False, allow_null=True)
    quantity = serializers.IntegerField(required=False, default=1)
    condition = serializers.CharField(max_length=40, help_text=", ".join(CONDITIONS))
    status = serializers.CharField(
        max_length=40, required=False, default="active", help_text=", ".join(STATUSES)
    )
    shipping = ShippingInput(many=True, required=False)
    auction = AuctionInput(required=False, allow_null=True)


class ListingPatch(ListingInput):
    """The same fields, each optional (PATCH)."""


class OfferInput(serializers.Serializer):
    price = Amount(help_text="For the whole quantity. " + MINOR)
    quantity = serializers.IntegerField(required=False, default=1)
    message = serializers.CharField(max_length=MAX_MESSAGE, required=False, allow_blank=True)


class BidInput(serializers.Serializer):
    amount = Amount(required=False, help_text=MINOR)
    maximum = Amount(required=False, help_text="Your node's maximum: it never leaves it.")

    def validate(self, attrs: dict) -> dict:
        if attrs.get("amount") is None and attrs.get("maximum") is None:
            raise serializers.ValidationError("Give an amount, a maximum, or both.")
        return attrs


class DeliveryOutput(serializers.Serializer):
    name = serializers.CharField(help_text="One of the other side's devices, named.")
    holds = serializers.BooleanField(help_text="Whether it holds this row already.")


class ListingPhotoOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    mime = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.CharField(help_text="The image, from this node.")


class BidOutput(serializers.Serializer):
    id = serializers.CharField()
    amount = serializers.IntegerField()
    amount_text = serializers.CharField()
    bidder = serializers.CharField(help_text="Named: you, or what this node calls them.")
    mine = serializers.BooleanField()
    at = serializers.DateTimeField(allow_null=True)
    delivery = DeliveryOutput(many=True, required=False)


class OfferOutput(serializers.Serializer):
    id = serializers.CharField()
    price = serializers.IntegerField()
    price_text = serializers.CharField()
    quantity = serializers.IntegerField()
    message = serializers.CharField()
    buyer = serializers.CharField()
    mine = serializers.BooleanField()
    accepted = serializers.BooleanField()
    at = serializers.DateTimeField(allow_null=True)
    delivery = DeliveryOutput(many=True, required=False)


class AuctionOutput(serializers.Serializer):
    best = serializers.IntegerField(allow_null=True)
    best_text = serializers.CharField()
    best_bidder = serializers.CharField(allow_null=True)
    minimum_bid = serializers.IntegerField(allow_null=True, help_text="The least a bid may be.")
    bids = serializers.IntegerField()
    ends_at = serializers.DateTimeField(help_text="The end in force (soft close moves it).")
    closed = serializers.BooleanField()
    winner = serializers.CharField(allow_null=True)
    price = serializers.IntegerField(allow_null=True)


class ListingOutput(serializers.Serializer):
    id = serializers.CharField()
    thread = serializers.CharField()
    title = serializers.CharField()
    summary = serializers.CharField()
    description = serializers.CharField()
    price = serializers.IntegerField()
    price_text = serializers.CharField()
    currency = serializers.CharField()
    category = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    place = serializers.CharField()
    lat = serializers.FloatField(allow_null=True)
    lon = serializers.FloatField(allow_null=True)
    quantity = serializers.IntegerField(help_text="In stock, as listed.")
    available = serializers.IntegerField(help_text="What accepted offers have not taken yet.")
    condition = serializers.CharField()
    status = serializers.CharField()
    shipping = ShippingInput(many=True)
    auction = AuctionOutput(allow_null=True)
    photos = ListingPhotoOutput(many=True)
    bids = BidOutput(many=True, required=False)
    offers = OfferOutput(many=True, required=False)


class WrittenOutput(serializers.Serializer):
    id = serializers.CharField(allow_null=True, help_text="The row written (None: nothing yet).")
    listing = ListingOutput()


# -- deals ---------------------------------------------------------------------------------------


class DealStepInput(serializers.Serializer):
    step = serializers.ChoiceField(list(deal_rules.STEPS))
    reference = serializers.CharField(max_length=1_000, required=False, allow_blank=True)
    carrier = serializers.CharField(max_length=1_000, required=False, allow_blank=True)
    tracking = serializers.CharField(max_length=1_000, required=False, allow_blank=True)
    reason = serializers.CharField(max_length=5_000, required=False, allow_blank=True)
    outcome = serializers.ChoiceField(list(deal_rules.OUTCOMES), required=False)
    split_amount = Amount(required=False, help_text="Of a split: back to the buyer. " + MINOR)


class DealRatingInput(serializers.Serializer):
    overall = serializers.IntegerField(help_text="1 to 5 stars.")
    as_described = serializers.IntegerField(required=False, allow_null=True)
    communication = serializers.IntegerField(required=False, allow_null=True)
    shipping = serializers.IntegerField(required=False, allow_null=True)
    comment = serializers.CharField(max_length=5_000, required=False, allow_blank=True)


class DealMessageInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_MESSAGE)


class DealInviteInput(serializers.Serializer):
    role = serializers.ChoiceField([deal_rules.ESCROW, deal_rules.SHIPPER])


class DealInviteOutput(serializers.Serializer):
    role = serializers.CharField()
    link = serializers.CharField(help_text="A single-use link to pass on.")


class DealStepOutput(serializers.Serializer):
    id = serializers.CharField()
    step = serializers.CharField()
    by = serializers.CharField(help_text="Who wrote it, named.")
    role = serializers.CharField()
    at = serializers.DateTimeField(allow_null=True)
    fields = serializers.DictField()
    delivery = DeliveryOutput(many=True, required=False)


class DealMessageOutput(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField()
    by = serializers.CharField()
    mine = serializers.BooleanField()
    at = serializers.DateTimeField(allow_null=True)


class DealOutput(serializers.Serializer):
    thread = serializers.CharField()
    title = serializers.CharField()
    state = serializers.ChoiceField([deal_rules.NEW, *deal_rules.STEPS])
    role = serializers.CharField(help_text="Your role: buyer, seller, escrow, shipper.")
    price = serializers.IntegerField()
    price_text = serializers.CharField()
    currency = serializers.CharField()
    quantity = serializers.IntegerField()
    shop = serializers.CharField(help_text="The shop thread's id.")
    listing = serializers.CharField()
    actions = serializers.ListField(
        child=serializers.CharField(), help_text="Steps you may write now."
    )
    steps = DealStepOutput(many=True, required=False)
    messages = DealMessageOutput(many=True, required=False)
    ratings = serializers.ListField(child=serializers.DictField(), required=False)
