"""Evidence for the analyses tests: Istio's REDIRECT rules (CNI plugin golden) and the TPROXY sidecar dump
switched to REDIRECT, for pod 172.16.188.31 with the application on 8083 (the app sees 127.0.0.6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshviz.engine.envoy.patch import to_mode

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
POD_IP = "172.16.188.31"
APP_PORT = 8083
REDIRECT_RULES = (FIXTURES / "corpus/istio-cni/plugin/basic.txt.golden").read_text()
# indented as Envoy's admin endpoint writes it (to_mode writes compact JSON): the tests count its lines
ENVOY_REDIRECT = json.dumps(
    json.loads(to_mode((FIXTURES / "envoy/tproxy-original-src.json").read_text(), "REDIRECT").text), indent=2
)


def evidence_payload(**overrides: Any) -> dict[str, Any]:
    """A JSON create request for the REDIRECT pod."""
    payload: dict[str, Any] = {
        "iptables": REDIRECT_RULES,
        "envoy_config_dump": ENVOY_REDIRECT,
        "pod_ip": POD_IP,
        "pod_name": "geo-7d9f",
        "namespace": "hr2",
        "labels": {"app": "geo"},
        "app_ports": [APP_PORT],
    }
    payload.update(overrides)
    return payload
