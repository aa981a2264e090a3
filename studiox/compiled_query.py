"""Read queries the scheduler runs every second, composed and compiled once per connection.

Django composes and compiles a queryset anew every time it runs. The scheduler's tick runs a
dozen fixed queries every second that differ only in the times they compare against, and
composing them cost about 30 ms of CPU per tick on every deployment, busy or idle. A
`CompiledQuery` builds its queryset once with a stand-in for each time, compiles it, and then
runs that SQL with the real times in the stand-ins' places, its rows converted as the ORM
converts them.

`build` takes the times as keyword arguments and must pass each one unchanged to a lookup
(`wake_at__lte=now`); a time computed from another (`now - grace`) is a time of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet


class CompiledQuery:
    def __init__(self, build: Callable[..., QuerySet]) -> None:
        self.build = build
        # Per thread: Django's connections are, and a compiler holds the one it was made for.
        self._local = threading.local()

    def rows(self, **times: datetime) -> list[Any]:
        """The rows, as the queryset would give them."""
        connection = connections[DEFAULT_DB_ALIAS]
        compiled = getattr(self._local, "compiled", None)
        if compiled is None or compiled[0].connection is not connection:
            compiled = self._local.compiled = _compile(self.build, list(times), connection)
        compiler, sql, params, places = compiled
        values = list(params)
        for index, name in places:
            values[index] = connection.ops.adapt_datetimefield_value(times[name])
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            fetched = cursor.fetchall()
        return list(compiler.results_iter(results=[fetched], tuple_expected=True))

    def values(self, **times: datetime) -> list[Any]:
        """The first column of each row (a flat `values_list`)."""
        return [row[0] for row in self.rows(**times)]


def _compile(build: Callable[..., QuerySet], names: list[str], connection) -> tuple:
    # Stand-ins no real time equals: a day each in 1999, an odd microsecond.
    stand_ins = {
        name: datetime(1999, 1, 1 + day, microsecond=123457, tzinfo=UTC)
        for day, name in enumerate(names)
    }
    compiler = build(**stand_ins).query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    adapted = {connection.ops.adapt_datetimefield_value(t): name for name, t in stand_ins.items()}
    places = [
        (index, adapted[param])
        for index, param in enumerate(params)
        if isinstance(param, str | datetime) and param in adapted
    ]
    missing = set(names) - {name for _, name in places}
    if missing:
        raise ValueError(f"not passed unchanged to a lookup: {', '.join(sorted(missing))}")
    return compiler, sql, params, places
