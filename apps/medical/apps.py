from django.apps import AppConfig


class MedicalConfig(AppConfig):
    """Medical records the patient holds: FHIR resources in a record thread, providers who join
    by QR and write what their grant allows, a sensitive part only chosen providers join, an
    emergency summary behind a link and a passcode, and an audit log (ADR 23)."""

    name = "apps.medical"
    label = "medical"
    replicated = True  # its replicated models live in thread databases
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.thread.appspec import thread_app_register
        from apps.core.thread.ordered_data import validators_register
        from apps.core.thread.policy import policy_template_register
        from apps.medical import rules
        from apps.medical.policy import PROVIDER, RULES_APP, SHAPE, record_policy, record_spec

        policy_template_register(SHAPE, record_policy, member=PROVIDER)
        thread_app_register(RULES_APP, record_spec, only_in=SHAPE)
        validators_register(RULES_APP, rules.validators)

        from apps.core.threads.signals import ops_written, thread_added
        from apps.medical import duties

        # A record created through the threads API gets its rules and patient row at once.
        thread_added.connect(duties.on_thread_added, dispatch_uid="medical-created")
        ops_written.connect(duties.on_ops_written, dispatch_uid="medical-duties")

        from apps.core.threads import invite_terms
        from apps.core.threads.pages import ThreadPage, register
        from apps.medical import home
        from apps.medical.apis import medical_invite_terms
        from apps.medical.policy import ROLE_WORDS

        # A grant travels with the invites API's ``grant`` object (the patient's node writes it
        # for whoever redeems the invite); every invite of a record is made by this app.
        invite_terms.register(SHAPE, medical_invite_terms, always=True)
        register(
            SHAPE,
            ThreadPage(
                "medical:record",
                label="Record",
                waiting=home.waiting,
                latest=home.latest,
                roles=ROLE_WORDS,
            ),
        )
