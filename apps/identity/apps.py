from django.apps import AppConfig


class IdentityConfig(AppConfig):
    """A profile shared field by field, achievements witnessed by peers, challenges and duels,
    and witness standing anyone can inspect (ADR 26)."""

    name = "apps.identity"
    label = "identity"
    replicated = True  # its models live in the profile thread and in threads that enable it
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.ordered_data import validators_register
        from apps.core.thread.policy import policy_template_register
        from apps.core.threads.pages import ThreadPage, register
        from apps.identity import duties, home, policy, profile_duties, rules

        policy_template_register(policy.PROFILE_SHAPE, policy.profile_policy)
        thread_app_register(policy.PROFILE_APP, policy.profile_spec, only_in=policy.PROFILE_SHAPE)
        thread_app_register(policy.APP, policy.identity_spec)
        validators_register(policy.APP, rules.validators)
        register(
            policy.APP,
            ThreadPage(
                "identity:achievements",
                label="Achievements",
                waiting=home.waiting,
                roles=policy.ROLE_WORDS,
            ),
        )
        duties.install()
        profile_duties.install()
