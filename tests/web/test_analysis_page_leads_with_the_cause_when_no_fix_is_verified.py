"""When no plan's re-simulation reaches the goal, the analysis page leads with the cause, says no verified fix was
found and lists each plan tried; the one-line summary names no fix.  When one does, it is marked verified."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshviz.analyses import services

pytestmark = pytest.mark.django_db

FIX = Path(__file__).resolve().parents[1] / "fixtures"
TPROXY = (FIX / "corpus/istio-cni/plugin/tproxy.txt.golden").read_text()
REDIRECT = (FIX / "corpus/istio-cni/plugin/basic.txt.golden").read_text()
REJECTED = (FIX / "envoy/istio-1.18-sidecar-geo-virtualInbound-error-state.json").read_text()
OLD = (FIX / "envoy/istio-1.3-sidecar-productpage-bookinfo.json").read_text()


def _page(user: User, **evidence: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    analysis = services.create_analysis(owner=user, **evidence)  # type: ignore[arg-type]
    services.run_analysis(analysis)
    analysis.refresh_from_db()
    client = Client()
    client.force_login(user)
    return client.get(f"/a/{analysis.slug}/").content.decode(), analysis.results or {}


def test_a_rejected_listener_leads_and_no_fix_is_named(user: User) -> None:
    html, results = _page(user, iptables=TPROXY, envoy_config_dump=REJECTED, pod_ip="172.16.188.31")
    assert "Envoy rejected listener virtualInbound" in results["summary"]
    assert "no verified fix" in results["summary"]
    assert "verified fix:" not in results["summary"]
    assert "no verified fix" in html and 'class="tried"' in html
    assert results["fix"]["patches"] == [] and results["fix"]["tried"]


def test_the_1_3_pod_gets_its_verified_fix_named(user: User) -> None:
    html, results = _page(user, iptables=REDIRECT, envoy_config_dump=OLD, pod_ip="172.30.150.216")
    assert (
        "analysis of pod <strong>productpage-v1-7bbd79f8fd-k6j79</strong> in namespace <strong>default</strong>" in html
    )
    assert "verified fix: upgrade the sidecar to Istio 1.10 or later" in results["summary"]
    assert "tag-ok" in html
