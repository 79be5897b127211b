"""The audit log: who shared what, created or revoked which key, added or deleted which cluster, joined or left
which team, deleted which analysis.  `record` writes one event per user whose log it belongs to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .models import AuditEvent


def record(actor: Any, action: str, subject: str, *, also: Iterable[Any] = (), **details: Any) -> None:
    """Log `action` on `subject` by `actor` in the actor's log and in the logs of the users in `also`."""
    users = {}
    for user in (actor, *also):
        if user is not None and getattr(user, "is_authenticated", False) and user.pk is not None:
            users[user.pk] = user
    clean = {k: v if isinstance(v, str | int | float | bool | None | list) else str(v) for k, v in details.items()}
    AuditEvent.objects.bulk_create(
        AuditEvent(
            user=user,
            actor=actor if actor in users.values() else None,
            action=action,
            subject=subject[:300],
            details=clean,
        )
        for user in users.values()
    )


def events_for(user: Any, limit: int = 200) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(user=user).select_related("actor")[:limit])
