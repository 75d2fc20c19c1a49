"""Full-text search over messages: an FTS5 index in each thread database, kept by triggers.

External content (the text lives once, in messaging_message) keyed by the message table's rowid.
The triggers fire for every write, local or applied from another node, so the index never needs
the services. VACUUM may renumber rowids of a table without an integer primary key: after one,
``INSERT INTO messaging_message_fts(messaging_message_fts) VALUES ('rebuild')`` reindexes.
"""

from django.db import migrations

FORWARD = [
    "CREATE VIRTUAL TABLE messaging_message_fts USING fts5("
    "text, content='messaging_message', content_rowid='rowid', tokenize='unicode61')",
    "CREATE TRIGGER messaging_message_fts_ai AFTER INSERT ON messaging_message BEGIN "
    "INSERT INTO messaging_message_fts(rowid, text) VALUES (new.rowid, new.text); END",
    "CREATE TRIGGER messaging_message_fts_ad AFTER DELETE ON messaging_message BEGIN "
    "INSERT INTO messaging_message_fts(messaging_message_fts, rowid, text) "
    "VALUES ('delete', old.rowid, old.text); END",
    "CREATE TRIGGER messaging_message_fts_au AFTER UPDATE OF text ON messaging_message BEGIN "
    "INSERT INTO messaging_message_fts(messaging_message_fts, rowid, text) "
    "VALUES ('delete', old.rowid, old.text); "
    "INSERT INTO messaging_message_fts(rowid, text) VALUES (new.rowid, new.text); END",
    "INSERT INTO messaging_message_fts(messaging_message_fts) VALUES ('rebuild')",
]
BACKWARD = [
    "DROP TRIGGER IF EXISTS messaging_message_fts_au",
    "DROP TRIGGER IF EXISTS messaging_message_fts_ad",
    "DROP TRIGGER IF EXISTS messaging_message_fts_ai",
    "DROP TABLE IF EXISTS messaging_message_fts",
]


class Migration(migrations.Migration):
    dependencies = [("messaging", "0002_receipt")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
