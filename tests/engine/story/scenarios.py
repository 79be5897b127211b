"""Loading the data-driven story scenarios in tests/fixtures/scenarios (see its README.md).

A scenario folder holds the pod's evidence - `iptables`, optional `ip-rule`, `ip-route`,
`sysctl` - the Envoy config (`envoy.json`, or `envoy.ref`: one line, the path of a dump used
unchanged, relative to the folder) and `case.json`:

    {"description": ..., "source": ...,
     "args": {"pod_ip", "proxy_uid", "proxy_gid", "direction", "client", "port" | "dst",
              "app_uid", "app_gid", "app_ports"},
     "expect": {verdict field: value that must hold},
     "expect_findings_contain": [substrings of the findings (text and cited rules)],
     "copied_from": {"iptables": "../../corpus/..."}}                           # optional
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshviz.engine.pipeline.pod import StoryResult, run_story
from meshviz.engine.story.model import INBOUND_VERDICT_FIELDS, OUTBOUND_VERDICT_FIELDS

SCENARIOS = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"
EVIDENCE = {"iptables": "iptables", "ip_rule": "ip-rule", "ip_route": "ip-route", "sysctl": "sysctl"}
ARGS = {"pod_ip", "proxy_uid", "proxy_gid", "direction", "client", "port", "dst", "app_uid", "app_gid", "app_ports"}
INBOUND_VERDICT = INBOUND_VERDICT_FIELDS
OUTBOUND_VERDICT = OUTBOUND_VERDICT_FIELDS


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    case: dict[str, Any] = field(hash=False, compare=False)

    @property
    def args(self) -> dict[str, Any]:
        return self.case["args"]

    @property
    def direction(self) -> str:
        return self.args.get("direction", "inbound")

    def file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.exists() else None

    def envoy_path(self) -> Path | None:
        direct = self.file("envoy.json")
        ref = self.file("envoy.ref")
        assert not (direct and ref), f"{self.name}: give envoy.json or envoy.ref, not both"
        if ref is not None:
            return (self.path / ref.read_text().strip()).resolve()
        return direct

    def cli_args(self) -> list[str]:
        """The same story as `python -m meshviz.engine story` arguments."""
        argv = ["story"]
        for key, fname in EVIDENCE.items():
            p = self.file(fname)
            if p is not None:
                argv += [f"--{key.replace('_', '-')}", str(p)]
        envoy = self.envoy_path()
        if envoy is not None:
            argv += ["--envoy", str(envoy)]
        a = self.args
        argv += ["--pod-ip", a["pod_ip"], "--direction", self.direction]
        for key in ("proxy_uid", "proxy_gid", "client", "port", "dst", "app_uid", "app_gid"):
            if key in a:
                argv += [f"--{key.replace('_', '-')}", str(a[key])]
        for port in a.get("app_ports", ()):
            argv += ["--app-port", str(port)]
        return argv


def load(name: str) -> Scenario:
    path = SCENARIOS / name
    return Scenario(name, path, json.loads((path / "case.json").read_text()))


def all_scenarios() -> list[Scenario]:
    return [load(p.name) for p in sorted(SCENARIOS.iterdir()) if (p / "case.json").exists()]


def run(s: Scenario) -> StoryResult:
    texts: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for key, fname in EVIDENCE.items():
        p = s.file(fname)
        texts[key] = p.read_text() if p is not None else None
        sources[key] = str(p) if p is not None else ""
    envoy = s.envoy_path()
    a = dict(s.args)
    a.setdefault("direction", "inbound")
    if "app_ports" in a:
        a["app_ports"] = tuple(a["app_ports"])
    return run_story(
        iptables=texts["iptables"],
        ip_rule=texts["ip_rule"],
        ip_route=texts["ip_route"],
        sysctl=texts["sysctl"],
        envoy=envoy.read_text() if envoy is not None else None,
        sources={**sources, "envoy": str(envoy) if envoy is not None else ""},
        **a,
    )


def findings_text(findings: list[dict[str, Any]]) -> str:
    """Every finding with the rules and Envoy objects it cites, one per line."""
    return "\n".join(" | ".join([f["text"], *f["refs"]]) for f in findings)
