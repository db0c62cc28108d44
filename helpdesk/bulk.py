"""``bulk_update`` in one plain statement, for the hot paths that update many rows at once.

Django's ``QuerySet.bulk_update`` builds a ``CASE WHEN id = … THEN …`` expression per field
per row; compiling it cost a quarter of the message writer's time under load (the
benchmark's profile). On PostgreSQL the same update is one
``UPDATE … FROM (VALUES …)`` whose values are passed as parameters; elsewhere (SpatiaLite
in the embedded mode) Django's own ``bulk_update`` is used.
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
