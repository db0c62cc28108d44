"""Plain statements for the hot paths that read or write many rows at once.

Django's ``QuerySet.bulk_update`` builds a ``CASE WHEN id = … THEN …`` expression per field
per row; compiling it cost a quarter of the message writer's time under load (the
benchmark's profile). On PostgreSQL the same update is one
``UPDATE … FROM (VALUES …)`` whose values are passed as parameters; elsewhere (SpatiaLite
in the embedded mode) Django's own ``bulk_update`` is used.

Compiling a query costs the same on every call, whatever it fetches: for the writer's
reads (a batch of one message is its own batch at low load) it was a third of a batch's
CPU. :class:`ModelColumns` lets such a read be written once as SQL, kept next to the ORM
query it replaces, and still give model instances as the ORM would (Django's own column
SQL and value converters, GeoDjango's included).
"""

from collections.abc import Sequence

from django.db import connections, router
from django.db.models import Model


def bulk_update_rows(objs: Sequence[Model], fields: Sequence[str]) -> int:
    """Write ``fields`` of every object in ``objs`` (one model, saved rows) in one statement.

    Returns the number of rows updated. No signals, no ``auto_now``: like ``bulk_update``.
    """
    if not objs or not fields:
        return 0
    model = type(objs[0])
    db = router.db_for_write(model)
    connection = connections[db]
    if connection.vendor != "postgresql":
        return model._base_manager.using(db).bulk_update(objs, fields)
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    # VALUES columns are column1, column2, ...: column1 is the primary key. Each is cast to
    # its column's type: a VALUES column of NULLs alone would otherwise be text.
    sets = ", ".join(
        f"{qn(f.column)} = CAST(v.column{i} AS {f.db_type(connection)})"
        for i, f in enumerate(columns, start=2)
    )
    row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    params: list = []
    for obj in objs:
        params.append(pk.get_db_prep_value(obj.pk, connection))
        params += [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in columns]
    # Names and types come from the model's meta; every value is a parameter.
    sql = (
        f"UPDATE {table} SET {sets} FROM (VALUES {', '.join([row] * len(objs))}) AS v "  # noqa: S608
        f"WHERE {table}.{qn(pk.column)} = CAST(v.column1 AS {pk.db_type(connection)})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class ModelColumns:
    """The select list of every concrete column of ``model`` under a table alias, and the
    reader that turns those values of a row back into an instance (``from_db``, with the
    converters the ORM would apply). Build once per process; SQL uses ``self.sql``."""

    def __init__(self, model: type[Model], alias: str, using: str) -> None:
        connection = connections[using]
        compiler = model._base_manager.using(using).all().query.get_compiler(using)
        self.model, self.using = model, using
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [f.attname for f in self.fields]
        parts, self.converters = [], []
        for i, f in enumerate(self.fields):
            col = f.get_col(alias)
            sql, params = f.select_format(compiler, *compiler.compile(col))
            if params:
                raise ValueError(f"{model.__name__}.{f.name}: a column with parameters")
            parts.append(sql)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                self.converters.append((i, col, found))
        self.sql = ", ".join(parts)
        self.width = len(parts)
        self.pk_index = self.fields.index(model._meta.pk)

    def load(self, row: Sequence, start: int = 0, seen: dict | None = None) -> Model | None:
        """The instance held by ``row[start:start + width]``; None for a LEFT JOIN's miss.

        With ``seen`` (a dict the caller keeps for one result), a row whose primary key was
        loaded before gives that same instance: a batch's fifty conversations of one
        workspace share one Workspace, as they share one row.
        """
        key = row[start + self.pk_index]
        if key is None:
            return None
        if seen is not None and key in seen:
            return seen[key]
        values = list(row[start : start + self.width])
        connection = connections[self.using]
        for i, col, found in self.converters:
            for converter in found:
                values[i] = converter(values[i], col, connection)
        obj = self.model.from_db(self.using, self.attnames, values)
        if seen is not None:
            seen[key] = obj
        return obj
