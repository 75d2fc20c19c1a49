from django.apps import AppConfig


class MarketConfig(AppConfig):
    """Buying and selling: shops, offers, auctions, deals with escrow and shipping, ratings,
    and search through indexes other nodes run (ADR 22)."""

    name = "apps.market"
    label = "market"
    replicated = True  # its replicated models live in thread databases
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.ordered_data import validators_register
        from apps.core.thread.policy import policy_template_register
        from apps.market import deal_rules, rules
        from apps.market.policy import (
            BUYER,
            CUSTOMER,
            DEAL_APP,
            DEAL_RULES_APP,
            RULES_APP,
            SHOP_APP,
            deal_policy,
            deal_spec,
            market_spec,
            shop_policy,
        )

        policy_template_register(SHOP_APP, shop_policy, member=CUSTOMER)
        policy_template_register(DEAL_APP, deal_policy, member=BUYER)
        thread_app_register(RULES_APP, market_spec, only_in=SHOP_APP)
        thread_app_register(DEAL_RULES_APP, deal_spec, only_in=DEAL_APP)
        validators_register(RULES_APP, rules.validators)
        validators_register(DEAL_RULES_APP, deal_rules.validators)
