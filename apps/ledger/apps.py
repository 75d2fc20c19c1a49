from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """Mutual credit: tallies between two people, whose chits both replicas check, and a
    personal ledger."""

    name = "apps.ledger"
    label = "ledger"
    replicated = True  # its models live in thread databases
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.ordered_data import validators_register
        from apps.core.thread.policy import policy_template_register
        from apps.core.threads.signals import ops_written
        from apps.ledger import books_policy, duties, rules
        from apps.ledger.policy import APP, PARTNER, RULES_APP, ledger_spec, tally_policy

        policy_template_register(APP, tally_policy, member=PARTNER)
        policy_template_register(books_policy.APP, books_policy.books_policy)
        thread_app_register(RULES_APP, ledger_spec, only_in=APP)
        validators_register(RULES_APP, rules.validators)
        ops_written.connect(duties.on_ops_written, dispatch_uid="ledger-duties")
        # A tally thread opens on its tally page, with a "Tally" tab.
        from apps.core.threads.pages import ThreadPage, register
        from apps.ledger import home
        from apps.ledger.policy import ROLE_WORDS

        register(
            APP, ThreadPage("ledger:tally", label="Tally", waiting=home.waiting, roles=ROLE_WORDS)
        )
        register(books_policy.APP, ThreadPage("ledger_books:thread", label="Books"))
