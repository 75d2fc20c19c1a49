from django.apps import AppConfig


class VotingConfig(AppConfig):
    """Polls and elections in any thread that enables voting: ballots counted once per voter by
    every replica, results every node computes, and secret ballots held by trustees."""

    name = "apps.voting"
    label = "voting"
    replicated = True  # its models live in thread databases
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.ordered_data import validators_register
        from apps.core.threads.pages import ThreadPage, register
        from apps.core.threads.signals import ops_written
        from apps.voting import duties, home, rules
        from apps.voting.policy import APP, ROLE_WORDS, voting_spec

        thread_app_register(APP, voting_spec)
        validators_register(APP, rules.validators)
        ops_written.connect(duties.on_ops_written, dispatch_uid="voting-duties")
        register(
            APP,
            ThreadPage("voting:polls", label="Polls", waiting=home.waiting, roles=ROLE_WORDS),
        )
