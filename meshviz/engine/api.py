"""The engine's facade: the one module Django, Celery tasks, the CLI's callers and the explorer import.

    pod = load_pod(evidence)                       # parse once: snapshot, Envoy config, profile, findings
    result = analyse(evidence, connections)        # every connection's story, the comparison and the fix
    story = run_story(...)                         # one connection (see pipeline.pod.run_story)

Everything below this module is arranged in layers (docs/architecture.md; `make lint` checks them with
import-linter): core < netfilter | routing | envoy < istio < sim < evidence < story < pipeline < render <
explorer | fix < api < cli.  The names re-exported here are the engine's public surface; what is not here is
internal and may move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshviz.engine.core import safejson
from meshviz.engine.core.defaults import DEFAULT_POD_IFACE
from meshviz.engine.core.errors import EngineInputError, ParseError, ParseWarning
from meshviz.engine.core.gcpause import gc_paused
from meshviz.engine.core.limits import MAX_COMPARED_CONNECTIONS, MAX_CONNECTIONS
from meshviz.engine.core.model import Family, Packet
from meshviz.engine.core.trace import Trace
from meshviz.engine.envoy.lazy import redact_config_dump_text
from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.envoy.proxyconfig import merge_envoy_inputs
from meshviz.engine.evidence.archive import ArchiveError
from meshviz.engine.evidence.bugreport import PodEvidence, pod_evidence, pod_keys, read_bug_report
from meshviz.engine.evidence.bundle import Bundle, read_bundle
from meshviz.engine.evidence.kinds import EVIDENCE_KINDS, EVIDENCE_SOURCES, EvidenceKind
from meshviz.engine.evidence.podspec import (
    PROXY_CONTAINER,
    PodIdentity,
    app_ports,
    effective_id,
    has_sidecar,
    istio_version,
    pod_ips,
    proxy_container,
)
from meshviz.engine.evidence.podspec import interception_mode as spec_interception_mode
from meshviz.engine.explorer import diff as analysis_diff
from meshviz.engine.explorer import nft_view, structure, whatif
from meshviz.engine.fix.compare import compare
from meshviz.engine.fix.modes import mode_of
from meshviz.engine.fix.plans import fix
from meshviz.engine.istio.reconstruct import ReconstructionError, reconstruct_from_pod
from meshviz.engine.netfilter.model import Ruleset
from meshviz.engine.netfilter.parser import IptablesParseResult, parse_iptables
from meshviz.engine.netfilter.render import rule_text
from meshviz.engine.nftables.model import NftParseResult
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.pipeline.evidence import (
    Evidence,
    SimulatedPod,
    connection_story,
    identity_of,
    simulated_pod,
    verdict_line,
)
from meshviz.engine.pipeline.load import LoadResult, load_snapshot
from meshviz.engine.pipeline.pod import Pod, load_pod, run_story, trace
from meshviz.engine.pipeline.rulescache import iptables_once
from meshviz.engine.render import dot as render
from meshviz.engine.render import flowchart
from meshviz.engine.render.dot import DiagramError
from meshviz.engine.routing.addr import parse_ip_addr
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.sim.simulate import Sender
from meshviz.engine.story.model import Finding, Story, StoryHop

__all__ = [
    "DEFAULT_POD_IFACE",
    "EVIDENCE_KINDS",
    "EVIDENCE_SOURCES",
    "MAX_CONNECTIONS",
    "PROXY_CONTAINER",
    "AnalysisResult",
    "ArchiveError",
    "Bundle",
    "DiagramError",
    "EngineInputError",
    "Evidence",
    "EvidenceKind",
    "Family",
    "Finding",
    "IptablesParseResult",
    "LoadResult",
    "NftParseResult",
    "Packet",
    "ParseError",
    "ParseWarning",
    "Pod",
    "PodEvidence",
    "PodIdentity",
    "ReconstructionError",
    "Ruleset",
    "Sender",
    "SimulatedPod",
    "Story",
    "StoryHop",
    "Trace",
    "analyse",
    "analysis_diff",
    "app_ports",
    "compare",
    "connection_story",
    "effective_id",
    "fix",
    "flowchart",
    "gc_paused",
    "has_sidecar",
    "identity_of",
    "iptables_once",
    "istio_version",
    "load_pod",
    "load_snapshot",
    "merge_envoy_inputs",
    "mode_of",
    "nft_view",
    "parse_config_dump",
    "parse_ip_addr",
    "parse_ip_routes",
    "parse_ip_rules",
    "parse_iptables",
    "parse_nftables",
    "parse_sysctls",
    "pod_evidence",
    "pod_ips",
    "pod_keys",
    "proxy_container",
    "read_bug_report",
    "read_bundle",
    "reconstruct_from_pod",
    "redact_config_dump_text",
    "render",
    "rule_text",
    "run_story",
    "safejson",
    "simulated_pod",
    "spec_interception_mode",
    "structure",
    "trace",
    "verdict_line",
    "whatif",
]


@dataclass(frozen=True)
class AnalysisResult:
    """Every connection's story, the REDIRECT/TPROXY comparison of every inbound connection and the fix for the
    first."""

    stories: tuple[dict[str, Any], ...]
    comparison: dict[str, Any] | None
    fix: dict[str, Any] | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "stories": list(self.stories),
            "comparison": self.comparison,
            "fix": self.fix,
            "summary": self.summary,
        }


def analyse(
    ev: Evidence,
    connections: Sequence[Mapping[str, Any]],
    progress: Callable[[int, int, str], None] | None = None,
) -> AnalysisResult:
    """Run every connection's story; compare the modes for every inbound connection; plan a fix for the first.

    Only a fix whose re-simulation reaches the goal is ever named in the summary; otherwise the cause leads.
    `progress(step, steps, doing)`, when given, is told before each step (a node-sized pod takes a while).
    """
    stories: list[dict[str, Any]] = []
    first_inbound: tuple[Mapping[str, Any], Story] | None = None
    has_inbound = any(c.get("direction") == "inbound" for c in connections)
    steps = len(connections) + (2 if has_inbound else 0)
    for number, conn in enumerate(connections, 1):
        if progress is not None:
            progress(number, steps, f"simulating connection {number} of {len(connections)}")
        story = connection_story(ev, conn)
        if first_inbound is None and conn["direction"] == "inbound":
            first_inbound = (conn, story)
        stories.append({"connection": dict(conn), "verdict_line": verdict_line(story), **story.to_dict()})
    comparison: dict[str, Any] | None = None
    fix_result: dict[str, Any] | None = None
    if first_inbound is not None:
        conn, story = first_inbound
        # every inbound connection, as given and in the other mode (the page draws each side by side)
        inbound = [(c["client"], int(c["port"])) for c in connections if c["direction"] == "inbound"]
        if progress is not None:
            progress(steps - 1, steps, "comparing REDIRECT and TPROXY")
        comparison = compare(ev, inbound[:MAX_COMPARED_CONNECTIONS])
        if len(inbound) > MAX_COMPARED_CONNECTIONS:
            comparison["notes"] = [
                *comparison.get("notes", []),
                f"the first {MAX_COMPARED_CONNECTIONS} of {len(inbound)} inbound connections are compared "
                f"(MAX_COMPARED_CONNECTIONS)",
            ]
        if progress is not None:
            progress(steps, steps, "looking for a verified fix")
        fix_result = fix(ev, client=conn["client"], port=int(conn["port"])).to_dict()
        summary = verdict_line(story)
        if fix_result["works"] and fix_result["patches"]:
            titles = "; ".join(p["title"] for p in fix_result["patches"])
            summary += f"; verified fix: {titles}"
        elif not fix_result["works"]:
            summary += f"; no verified fix ({len(fix_result.get('tried') or [])} plans tried)"
    elif stories:
        summary = stories[0]["verdict_line"]
    else:
        summary = "no connections to simulate"
    return AnalysisResult(stories=tuple(stories), comparison=comparison, fix=fix_result, summary=summary)
