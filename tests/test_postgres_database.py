"""When DATABASE_URL points at PostgreSQL, the suite really runs on PostgreSQL.

`make test` exports DATABASE_URL=postgres://postgres@127.0.0.1:5432/test when that server answers,
so in CI (CI=true) with PostgreSQL reachable this test must run, never skip.
"""

from __future__ import annotations

import os
import socket

import pytest
from django.db import connection

POSTGRES_SCHEMES = ("postgres://", "postgresql://", "pgsql://", "psql://")


def _postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.postgres
@pytest.mark.django_db
def test_database_connection_is_postgresql_when_database_url_points_to_postgres() -> None:
    if not os.environ.get("DATABASE_URL", "").startswith(POSTGRES_SCHEMES):
        if os.environ.get("CI") == "true" and _postgres_reachable():
            pytest.fail(
                "CI=true and PostgreSQL answers on 127.0.0.1:5432, but DATABASE_URL does not point to it: "
                "run the suite through `make test`"
            )
        pytest.skip("DATABASE_URL does not point to PostgreSQL")

    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
