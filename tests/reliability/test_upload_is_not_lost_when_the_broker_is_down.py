"""With the broker down an upload answered an HTML 500 without the slug and stayed `queued` forever.  Now it answers
202 with the slug, and the re-dispatcher (beat) sends it when the broker is back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import analyse, redispatch_queued
from tests.analyses.helpers import evidence_payload

pytestmark = pytest.mark.django_db(transaction=True)


def _broker_down(*args: Any, **kwargs: Any) -> None:
    raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def _broker_up(args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any) -> Any:
    """The broker takes the task and a worker runs it (in this process)."""
    return analyse.apply(args, kwargs)


def test_upload_gets_202_with_the_slug_then_is_dispatched_when_the_broker_returns(api_key: str) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    with mock.patch.object(analyse, "apply_async", side_effect=_broker_down):
        response = api.post("/api/v1/analyses/", evidence_payload(), format="json")
        assert response.status_code == 202, response.content
        slug = response.json()["slug"]
        assert response.json()["state"] == "queued"
        assert api.get(f"/api/v1/analyses/{slug}/").json()["state"] == "queued"
        # still down at the next beat tick: nothing lost, nothing sent
        Analysis.objects.filter(slug=slug).update(updated=timezone.now() - timedelta(minutes=1))
        assert redispatch_queued() == 0
    analysis = Analysis.objects.get(slug=slug)
    assert analysis.state == Analysis.State.QUEUED and analysis.dispatched_at is None

    # the broker is back
    Analysis.objects.filter(slug=slug).update(updated=timezone.now() - timedelta(minutes=1))
    with mock.patch.object(analyse, "apply_async", side_effect=_broker_up):
        assert redispatch_queued() == 1
        analysis.refresh_from_db()
        assert analysis.state == Analysis.State.DONE and analysis.dispatched_at is not None
        assert redispatch_queued() == 0


@override_settings(MESHVIZ_REDISPATCH_GRACE_SECONDS=5)
def test_redispatcher_leaves_fresh_uploads_to_their_own_dispatch(api_key: str) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    with mock.patch.object(analyse, "apply_async", side_effect=_broker_down):
        slug = api.post("/api/v1/analyses/", evidence_payload(), format="json").json()["slug"]
    assert redispatch_queued() == 0  # within the grace period
    assert Analysis.objects.get(slug=slug).state == Analysis.State.QUEUED
