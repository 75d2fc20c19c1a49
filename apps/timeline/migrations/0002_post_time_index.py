"""An index of post times: the row events of posts by stamp (the order pages are read in).
Partial, so the row events of other tables pay nothing for it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("timeline", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX timeline_post_time ON sereus_rowevents(hlc) WHERE tbl = 'timeline_post'",
            "DROP INDEX IF EXISTS timeline_post_time",
        )
    ]
