from django.apps import AppConfig


class MessagingConfig(AppConfig):
    """Conversations: threads with the messaging policy, their messages, reactions and names."""

    name = "apps.messaging"
    label = "messaging"
    replicated = True  # its models live in thread databases
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.policy import WRITER, policy_template_register
        from apps.messaging.policy import APP, messaging_policy

        policy_template_register(APP, messaging_policy, member=WRITER)

        from apps.core.threads.pages import ThreadPage, register
        from apps.messaging import home
        from apps.messaging.policy import ROLE_WORDS
        from apps.messaging.selectors import unread

        register(
            APP,
            ThreadPage(
                "messaging:conversation",
                unread=unread,
                label="Conversation",
                waiting=home.waiting,
                latest=home.latest,
                roles=ROLE_WORDS,
            ),
        )
