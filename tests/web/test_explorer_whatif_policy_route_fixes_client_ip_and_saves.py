"""On the missing-policy-route example, adding Istio's policy route in a what-if changes the inbound verdict (the
reply no longer escapes via eth0: the application sees the client); saving it creates a new analysis of its own,
derived from the original, with the same verdict; the patch exports the two added lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshviz.analyses.models import Analysis
from tests.web.explorer_support import POLICY_ROUTE_EDITS, analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_policy_route_whatif_changes_the_verdict_and_saves_as_a_new_analysis(
    django_capture_on_commit_callbacks: Any,
) -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    before = analysis.results["stories"][0]
    assert before["verdict"]["failure"] == "REPLY_ESCAPES_VIA_eth0"
    client = client_for(user)
    edits = json.dumps(POLICY_ROUTE_EDITS)
    url = f"/a/{analysis.slug}/whatif/"

    data = client.get(url, {"edits": edits, "format": "json"}).json()
    assert data["ok"] and data["errors"] == []
    inbound = data["diff"][0]
    assert inbound["changed"] is True
    assert inbound["before_verdict"]["failure"] == "REPLY_ESCAPES_VIA_eth0"
    assert inbound["after_verdict"]["failure"] is None
    assert inbound["after_verdict"]["app_peer_ip"] == "10.255.0.1"  # the client's own address
    assert data["changed"] == sum(1 for d in data["diff"] if d["changed"]) >= 1
    assert "+ip rule add fwmark 1337 lookup 133" in data["patch"]
    assert "+ip route add local default dev lo table 133" in data["patch"]

    page = client.get(url, {"edits": edits})
    assert page.status_code == 200
    html = page.content.decode()
    assert '<span class="differs-mark">changed</span>' in html
    assert "the application sees 10.255.0.1" in html

    # the form adds one edit at a time and keeps the scratch copy in the URL
    step1 = client.get(url, {"edits": "", "add": "1", **POLICY_ROUTE_EDITS[0]})
    assert step1.status_code == 302
    step2 = client.get(url, {"edits": json.dumps([POLICY_ROUTE_EDITS[0]]), "add": "1", **POLICY_ROUTE_EDITS[1]})
    assert step2.status_code == 302 and step2["Location"].startswith(f"{url}?edits=")
    followed = client.get(step2["Location"] + "&format=json").json()
    assert followed["edits"] == POLICY_ROUTE_EDITS

    patch = client.get(f"/a/{analysis.slug}/whatif/patch.txt", {"edits": edits})
    assert patch.status_code == 200 and patch["Content-Type"].startswith("text/plain")
    assert patch.content.decode() == data["patch"]

    with django_capture_on_commit_callbacks(execute=True):  # runs the queued analysis (eager Celery)
        saved = client.post(f"/a/{analysis.slug}/whatif/save/", {"edits": edits})
    assert saved.status_code == 302
    copy = Analysis.objects.get(slug=saved["Location"].strip("/").split("/")[-1])
    assert saved["Location"] == copy.permalink_path != analysis.permalink_path
    assert copy.owner == user and copy.derived_from == analysis and copy.origin == Analysis.Origin.WHATIF
    assert copy.iptables == analysis.iptables
    assert copy.ip_rule.rstrip().endswith("ip rule add fwmark 1337 lookup 133")
    assert copy.connections == analysis.connections
    copy.refresh_from_db()
    assert copy.state == Analysis.State.DONE, copy.error
    assert copy.results["stories"][0]["verdict"] == inbound["after_verdict"]
    page = client.get(copy.permalink_path)
    assert page.status_code == 200
    # the origin line reads as a sentence, not the edits' JSON
    assert copy.origin_notes == [
        f"a what-if copy of {analysis.permalink_path}: added to the ip rules: ip rule add fwmark 1337 lookup 133; "
        "added to the routes: ip route add local default dev lo table 133"
    ]
    assert '{"op"' not in page.content.decode()
    # diffing the copy against its original puts the original (the older) before: the fix shows as added lines
    picked = client.get(f"/a/{copy.slug}/diff/", {"other": analysis.slug})
    assert picked["Location"] == f"/diff/{analysis.slug}/{copy.slug}/"
    # the original is untouched
    analysis.refresh_from_db()
    assert analysis.results["stories"][0]["verdict"]["failure"] == "REPLY_ESCAPES_VIA_eth0"


def test_saving_needs_a_login() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    from django.test import Client

    response = Client().post(f"/a/{analysis.slug}/whatif/save/", {"edits": json.dumps(POLICY_ROUTE_EDITS)})
    assert response.status_code == 302 and "/login" in response["Location"]
    assert Analysis.objects.count() == 1
