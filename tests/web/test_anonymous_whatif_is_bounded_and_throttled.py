"""`GET /a/<public-slug>/whatif/?format=json&edits=[{"op":"set_text",...}]` with chains that each jump twice to the
next ran 30 s at 3.3 GB until gunicorn killed the worker, without logging in.  Now it answers within seconds (the
engine's budget: memoised, or a named limit), and anonymous what-if is throttled per address."""

from __future__ import annotations

import json
import resource
import time

import pytest
from django.test import Client, override_settings

from meshviz.analyses import examples, services
from meshviz.analyses.models import Analysis
from tests.engine.limits.fanout import twice_jumping_chains

pytestmark = pytest.mark.django_db


def _public_example() -> Analysis:
    example = examples.get("redirect-app-sees-127.0.0.6")
    assert example is not None
    analysis = services.run_analysis(services.create_from_example(example, public=True))
    assert analysis.state == Analysis.State.DONE
    return analysis


def _edits(rules: str) -> str:
    return json.dumps([{"op": "set_text", "kind": "iptables", "text": rules}])


@pytest.mark.parametrize("change_mark", [False, True])
def test_fan_out_what_if_answers_within_seconds(change_mark: bool) -> None:
    analysis = _public_example()
    rules = twice_jumping_chains(20, change_mark=change_mark, table="mangle")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    response = Client().get(f"/a/{analysis.slug}/whatif/", {"format": "json", "edits": _edits(rules)})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content[:500]
    assert elapsed < 20, elapsed
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 400 * 1024  # KiB
    body = response.content.decode()
    if change_mark:
        assert "rule_evaluations_per_walk" in body  # the named limit, explained
    assert "Traceback" not in body


@override_settings(MESHVIZ_WHATIF_ANON_RATE="3/min")
def test_anonymous_what_if_is_throttled_per_address() -> None:
    analysis = _public_example()
    edits = json.dumps([{"op": "sysctl", "key": "net.ipv4.ip_forward", "value": "1"}])
    client = Client(REMOTE_ADDR="198.51.100.9")
    codes = [
        client.get(f"/a/{analysis.slug}/whatif/", {"format": "json", "edits": edits}).status_code for _ in range(4)
    ]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    response = client.get(f"/a/{analysis.slug}/whatif/", {"format": "json", "edits": edits})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert response.json()["errors"][0]["message"].startswith("too many simulations")
    # another address has its own window
    assert (
        Client(REMOTE_ADDR="198.51.100.10")
        .get(f"/a/{analysis.slug}/whatif/", {"format": "json", "edits": edits})
        .status_code
        == 200
    )
