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

        # Work a node does on its own when ops arrive: proxy bids and auction closes in shops,
        # the buyer joining a deal, sales and ratings reaching the shop, the search index.
        from apps.core.threads.signals import node_started, ops_written
        from apps.market import duties, index_duty, proxy, search_protocol

        ops_written.connect(proxy.on_ops_written, dispatch_uid="market-shop-duties")
        ops_written.connect(duties.on_ops_written, dispatch_uid="market-deal-duties")
        # Timers closing auctions at their end are lost with a stopped node: set them again.
        node_started.connect(
            lambda sender, **kw: proxy.shops_wake(), weak=False, dispatch_uid="market-wake"
        )
        index_duty.connect()
        search_protocol.register()  # answers /sereus/market-search/1.0.0 when running an index

        from apps.core.threads.pages import ThreadPage, register
        from apps.market import home
        from apps.market.policy import DEAL_ROLE_WORDS, ROLE_WORDS

        register(
            SHOP_APP,
            ThreadPage("market:shop", label="Shop", waiting=home.shop_waiting, roles=ROLE_WORDS),
        )
        register(
            DEAL_APP,
            ThreadPage(
                "market:deal",
                label="Deal",
                waiting=home.deal_waiting,
                latest=home.deal_latest,
                roles=DEAL_ROLE_WORDS,
            ),
        )
