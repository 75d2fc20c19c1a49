from django.apps import AppConfig


class TimelineConfig(AppConfig):
    """Timelines: a person's posts to the followers they admit, replies, reactions and reposts;
    a feed each follower's node ranks by its own rules; public posts as a blog."""

    name = "apps.timeline"
    label = "timeline"
    replicated = True  # its models live in thread databases (the feed index is node-local)
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.policy import policy_template_register
        from apps.timeline.policy import APP, FOLLOWER, timeline_policy

        policy_template_register(APP, timeline_policy, member=FOLLOWER)

        from apps.timeline import feed_signals

        feed_signals.connect()  # the feed index follows the ops as they arrive

        from apps.core.threads.pages import ThreadPage, register
        from apps.timeline import home
        from apps.timeline.policy import ROLE_WORDS

        register(
            APP,
            ThreadPage(
                "timeline:timeline",
                label="Timeline",
                waiting=home.waiting,
                latest=home.latest,
                roles=ROLE_WORDS,
            ),
        )
