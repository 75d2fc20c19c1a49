from django.apps import AppConfig


class ChecklistConfig(AppConfig):
    """A shared to-do list in any thread that enables it: items, claims, done, approvals."""

    name = "apps.checklist"
    label = "checklist"
    replicated = True  # its models live in thread databases
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.checklist import home, rules
        from apps.checklist.policy import APP, ROLE_WORDS, checklist_spec
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.ordered_data import validators_register
        from apps.core.threads.pages import ThreadPage, register

        thread_app_register(APP, checklist_spec)
        validators_register(APP, rules.validators)
        register(
            APP,
            ThreadPage(
                "checklist:checklist",
                label="Checklist",
                waiting=home.waiting,
                roles=ROLE_WORDS,
            ),
        )
