"""Bundled example pods (copies of seed scenarios, see README.md here) to start an analysis from.

Plain data, no Django: the engine's tests and bench/ use it too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from meshviz.engine.api import Evidence

EXAMPLES_DIR = Path(__file__).resolve().parent

#: evidence field -> file name in an example's folder
FILES = {
    "iptables": "iptables",
    "ip_rule": "ip-rule",
    "ip_route": "ip-route",
    "sysctl": "sysctl",
    "envoy_config_dump": "envoy.json",
}


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    description: str
    pod_ip: str
    app_ports: tuple[int, ...]
    proxy_uid: int | None
    proxy_gid: int | None
    order: int

    def evidence(self) -> dict[str, str]:
        """The example's evidence texts by field (missing files are empty)."""
        folder = EXAMPLES_DIR / self.name
        return {
            field: (folder / fname).read_text(encoding="utf-8") if (folder / fname).is_file() else ""
            for field, fname in FILES.items()
        }

    def analysis_fields(self) -> dict[str, Any]:
        """What an analysis of the example is made of: its evidence texts by field, the pod IP, the application
        ports and the proxy's uid/gid (keyword arguments of `services.create_analysis`)."""
        return {
            **self.evidence(),
            "pod_ip": self.pod_ip,
            "app_ports": list(self.app_ports),
            "proxy_uid": self.proxy_uid,
            "proxy_gid": self.proxy_gid,
        }

    def engine_evidence(self) -> Evidence:
        """The example as the engine's Evidence (empty texts are 'not given')."""
        e = self.evidence()
        return Evidence(
            iptables=e["iptables"],
            pod_ip=self.pod_ip,
            ip_rule=e["ip_rule"] or None,
            ip_route=e["ip_route"] or None,
            sysctl=e["sysctl"] or None,
            envoy=e["envoy_config_dump"] or None,
            proxy_uid=self.proxy_uid,
            proxy_gid=self.proxy_gid,
            app_ports=self.app_ports,
        )


@cache
def examples() -> tuple[Example, ...]:
    """Every bundled example, in display order."""
    found = []
    for meta in EXAMPLES_DIR.glob("*/example.json"):
        d = json.loads(meta.read_text(encoding="utf-8"))
        found.append(
            Example(
                name=meta.parent.name,
                title=d["title"],
                description=d["description"],
                pod_ip=d["pod_ip"],
                app_ports=tuple(int(p) for p in d.get("app_ports", [])),
                proxy_uid=d.get("proxy_uid"),
                proxy_gid=d.get("proxy_gid"),
                order=int(d.get("order", 99)),
            )
        )
    return tuple(sorted(found, key=lambda e: (e.order, e.name)))


def get(name: str) -> Example | None:
    return next((e for e in examples() if e.name == name), None)
