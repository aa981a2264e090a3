"""The database's own full-text index for passages: GIN on PostgreSQL, FTS5 on SQLite."""

from django.db import migrations

POSTGRES_FORWARD = (
    "CREATE INDEX knowledge_passage_search_gin ON knowledge_passage USING gin (search_vector)"
)
POSTGRES_BACKWARD = "DROP INDEX IF EXISTS knowledge_passage_search_gin"
# A table of its own (rowid = passage id) rather than an external-content table with
# triggers: Django rebuilds SQLite tables on some schema changes, which would drop triggers.
SQLITE_FORWARD = (
    "CREATE VIRTUAL TABLE knowledge_passage_fts USING fts5("
    "section, text, tokenize = 'porter unicode61 remove_diacritics 2')"
)
SQLITE_BACKWARD = "DROP TABLE IF EXISTS knowledge_passage_fts"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_FORWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_BACKWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
