"""Only real transient errors are retried: a result over PostgreSQL's jsonb limit (SQLSTATE 54000) was retried as
"transient" 6 times over 5.5 minutes, blocking the queue; now it fails at once with its reason."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import DataError, InterfaceError, OperationalError

from meshviz.analyses import services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import analyse, is_transient
from tests.analyses.helpers import POD_IP, REDIRECT_RULES


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _db_error(kind: type[Exception], message: str, sqlstate: str | None) -> Exception:
    exc = kind(message)
    if sqlstate:
        exc.__cause__ = _PgError(sqlstate)
    return exc


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_db_error(OperationalError, "connection refused", "08006"), True),
        (_db_error(OperationalError, "terminating connection due to administrator command", "57P01"), True),
        (_db_error(OperationalError, "deadlock detected", "40P01"), True),
        (_db_error(OperationalError, "database is locked", None), True),
        (_db_error(InterfaceError, "connection already closed", None), True),
        (_db_error(OperationalError, "total size of jsonb array elements exceeds the maximum", "54000"), False),
        (_db_error(DataError, "integer out of range", "22003"), False),
        (ValueError("no route"), False),
    ],
)
def test_transient_errors_are_told_from_failures(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.mark.django_db
def test_jsonb_limit_error_fails_at_once_with_the_reason() -> None:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    too_big = _db_error(
        OperationalError, "total size of jsonb array elements exceeds the maximum of 268435455 bytes", "54000"
    )
    with mock.patch.object(services, "compute_results", side_effect=too_big) as compute:
        assert analyse.apply(args=[a.pk]).get() == "failed"
    assert compute.call_count == 1
    a.refresh_from_db()
    assert a.state == Analysis.State.FAILED and "jsonb" in a.error
