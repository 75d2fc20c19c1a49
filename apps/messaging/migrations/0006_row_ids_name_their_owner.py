"""Row ids name their owner (apps.core.thread.rowid): a new default for every id.

Only the models' state changes: the default is Python's, the columns stay as they are. (An
AlterField on SQLite would rebuild each table, dropping the triggers other migrations put on it.)
"""

import apps.core.replicated
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ('messaging', '0005_message_time_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="id",
                    field=models.UUIDField(
                        default=apps.core.replicated.row_id,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                )
                for model in ("attachment", "message", "profile", "reaction", "receipt")
            ],
        ),
    ]
