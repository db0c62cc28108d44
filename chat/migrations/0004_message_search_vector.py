"""Message search: fill ``search_terms``; on PostgreSQL a stored tsvector and its GIN index.

The column is generated from ``search_terms`` (a tsvector literal written where messages are
built, chat.message_store), so no code path can forget to update it. It is invisible to the
ORM; SQLite (the embedded mode) matches ``search_terms`` itself (see chat.search).

The terms are filled before the column is added, so the table is rewritten once.
"""

from django.db import migrations

BATCH = 2000

FORWARD = [
    "ALTER TABLE chat_message ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (search_terms::tsvector) STORED",
    "CREATE INDEX chat_message_search_gin ON chat_message USING gin (search_vector)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS chat_message_search_gin",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_vector",
]


def fill_search_terms(apps, schema_editor):
    from chat.search import message_search_terms

    Message = apps.get_model("chat", "Message")
    last = 0
    while True:
        batch = list(
            Message.objects.filter(pk__gt=last, search_terms="")
            .exclude(text="")
            .order_by("pk")
            .only("pk", "text")[:BATCH]
        )
        if not batch:
            return
        for message in batch:
            message.search_terms = message_search_terms(message.text)
        Message.objects.bulk_update(batch, ["search_terms"], batch_size=BATCH)
        last = batch[-1].pk


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_agents_day")]

    operations = [
        migrations.RunPython(fill_search_terms, migrations.RunPython.noop),
        migrations.RunPython(_run(FORWARD), _run(BACKWARD)),
    ]
