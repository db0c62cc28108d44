"""PostgreSQL only: the stored tsvector and its GIN index; SQLite scores search_terms in Python.

The column is generated from ``search_terms`` (a tsvector literal written by
``Article.save``), so no code path can forget to update it.
"""

from django.db import migrations

FORWARD = [
    "ALTER TABLE knowledge_article ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (search_terms::tsvector) STORED",
    "CREATE INDEX knowledge_article_search_gin ON knowledge_article USING gin (search_vector)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS knowledge_article_search_gin",
    "ALTER TABLE knowledge_article DROP COLUMN IF EXISTS search_vector",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
