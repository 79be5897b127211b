"""summary(config): a JSON-friendly overview for the CLI and the web app."""

from __future__ import annotations

import json
from pathlib import Path

from meshviz.engine.envoy import parse_config_dump, summary

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


def test_summary_of_the_tproxy_dump() -> None:
    config = parse_config_dump((FIXTURES / "tproxy-original-src.json").read_text()).config
    s = summary(config)
    json.dumps(s)  # serialisable
    assert s["interception_mode"] == "TPROXY" and s["istio_version"] == "1.18.2"
    assert s["counts"]["listeners"] == 6 and s["counts"]["clusters"] == 12
    vi = next(x for x in s["listeners"] if x["name"] == "virtualInbound")
    assert vi["address"] == "0.0.0.0:15006" and vi["transparent"] is True and vi["original_src_mark"] == 1337
    inbound = next(x for x in s["clusters"] if x["name"] == "inbound|8083||")
    assert inbound["type"] == "ORIGINAL_DST" and inbound["upstream_bind"] == "127.0.0.6:0"
    assert s["bootstrap_admin"] == "127.0.0.1:15000" and s["errors"] == []


def test_summary_reports_failed_listeners() -> None:
    name = "istio-1.18-sidecar-geo-virtualInbound-error-state.json"
    s = summary(parse_config_dump((FIXTURES / name).read_text()).config)
    failed = [x for x in s["listeners"] if x["state"] == "error"]
    assert len(failed) == 2 and "LuaValidationError" in failed[0]["error"]
    assert s["counts"]["listeners_error"] == 2 and s["redactions"] == 2
