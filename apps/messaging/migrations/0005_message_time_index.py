"""An index of message times: the row events of messages by stamp (the order pages are read in).

Partial, so the row events of other tables (every replicated write has them) pay nothing for it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_attachment")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX messaging_message_time ON sereus_rowevents(hlc)"
            " WHERE tbl = 'messaging_message'",
            "DROP INDEX IF EXISTS messaging_message_time",
        )
    ]
