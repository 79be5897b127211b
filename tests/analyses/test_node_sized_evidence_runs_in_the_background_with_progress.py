"""Issue 15: without a broker, evidence over MESHVIZ_BACKGROUND_BYTES is analysed in a background thread (the upload
answers at once, queued), its progress is recorded step by step and shown while it runs; smaller evidence is still
analysed inside the request."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from meshviz.analyses import progress, services
from meshviz.analyses.models import Analysis

from .helpers import evidence_payload


def _background_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("analyse-")]


@pytest.mark.django_db(transaction=True)
@override_settings(MESHVIZ_BACKGROUND_BYTES=1000)
def test_big_evidence_is_analysed_in_the_background_with_progress(api: APIClient, monkeypatch: Any) -> None:
    seen: list[tuple[int, int, str]] = []
    real = progress.report

    def recording(pk: int, step: int, steps: int, doing: str) -> None:
        seen.append((step, steps, doing))
        real(pk, step, steps, doing)

    monkeypatch.setattr(progress, "report", recording)
    response = api.post("/api/v1/analyses/", evidence_payload(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] in ("queued", "running") and "progress" in body
    for thread in _background_threads():
        thread.join(timeout=120)
    analysis = Analysis.objects.get(slug=body["slug"])
    assert analysis.state == Analysis.State.DONE and analysis.results_are_current()
    # waiting, then one step per connection, the comparison and the fix, the last one being "step N of N"
    assert seen[0][0] == 0 and "background" in seen[0][2]
    steps = len(analysis.connections) + 2
    assert [s for s, _, _ in seen[1:]] == list(range(1, steps + 1)) and {n for _, n, _ in seen[1:]} == {steps}
    assert any("fix" in doing for _, _, doing in seen)
    assert progress.of(analysis.pk) is None  # cleared when it finished
    assert api.get(f"/api/v1/analyses/{analysis.slug}/").json()["state"] == "done"


@pytest.mark.django_db(transaction=True)
def test_typical_evidence_is_still_analysed_inside_the_request(api: APIClient) -> None:
    response = api.post("/api/v1/analyses/", evidence_payload(), format="json")
    assert response.status_code == 201 and response.json()["state"] == "done"
    assert not _background_threads()


@pytest.mark.django_db
def test_the_analysis_page_shows_the_progress_while_it_runs(user: Any) -> None:
    from tests.conftest import logged_in

    analysis = services.create_analysis(**{k: v for k, v in evidence_payload().items() if k != "labels"}, owner=user)
    progress.report(analysis.pk, 2, 4, "simulating connection 2 of 2")
    html = logged_in(user).get(analysis.permalink_path).content.decode()
    assert "Step 2 of 4: simulating connection 2 of 2." in html
    data = APIClient()
    data.force_authenticate(user)
    assert data.get(f"/api/v1/analyses/{analysis.slug}/").json()["progress"] == {
        "step": 2,
        "steps": 4,
        "doing": "simulating connection 2 of 2",
    }
