"""Analyses for the explorer tests: a bundled example owned by a user of its own, run synchronously."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import User
from django.test import Client

from meshviz.analyses import examples, services
from meshviz.analyses.models import Analysis

MISSING_ROUTE = "tproxy-missing-policy-route-503-uf"
REDIRECT = "redirect-app-sees-127.0.0.6"
TPROXY_OK = "tproxy-original-src-app-sees-client"
#: the policy route Istio installs for TPROXY: marked replies go to lo (the missing-route example lacks it)
POLICY_ROUTE_EDITS = [
    {"op": "append_text", "kind": "ip_rule", "text": "ip rule add fwmark 1337 lookup 133"},
    {"op": "append_text", "kind": "ip_route", "text": "ip route add local default dev lo table 133"},
]


def explorer_user(name: str = "explorer") -> User:
    return User.objects.create_user(name, password=f"{name}-password-not-used")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def analysed_example(owner: User, name: str = MISSING_ROUTE) -> Analysis:
    """The bundled example as an analysis owned by `owner`, with its results computed."""
    example = examples.get(name)
    assert example is not None, name
    analysis = services.run_analysis(services.create_from_example(example, owner=owner))
    assert analysis.state == Analysis.State.DONE, analysis.error
    return analysis


def analysed_iptables(owner: User, iptables: str, like: str = MISSING_ROUTE) -> Analysis:
    """The example `like` with other iptables rules, analysed."""
    example = examples.get(like)
    assert example is not None
    analysis = services.create_analysis(**{**example.analysis_fields(), "iptables": iptables}, owner=owner)
    analysis = services.run_analysis(analysis)
    assert analysis.state == Analysis.State.DONE, analysis.error
    return analysis


NFT_LISTED = Path(__file__).resolve().parents[1] / "fixtures" / "nftables-listed"
#: Istio's TPROXY capture as native nftables (`nft list ruleset` of the nft golden)
NFT_TPROXY = (NFT_LISTED / "capture-tproxy.list").read_text()


def analysed_nft(owner: User, nftables: str = NFT_TPROXY, iptables: str = "", like: str = TPROXY_OK) -> Analysis:
    """The example `like` (its routes, Envoy dump, connections) with native nftables rules instead of iptables."""
    example = examples.get(like)
    assert example is not None
    fields = {**example.analysis_fields(), "iptables": iptables, "nftables": nftables}
    analysis = services.run_analysis(services.create_analysis(**fields, owner=owner))
    assert analysis.state == Analysis.State.DONE, analysis.error
    return analysis
