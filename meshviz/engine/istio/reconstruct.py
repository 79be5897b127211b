"""Rules reconstructed from a pod spec when they could not be captured ("reconstructed, not captured").

`reconstruct_from_pod(pod, reason)` regenerates what Istio programs in the pod - the iptables rules per
family and, in TPROXY mode, the policy rule and route - from istio-init's arguments (or the istio-cni
annotations) with the engine's Istio generator.  It is what the live collector, evidence bundles whose
capture was refused and `istioctl bug-report` archives (which hold no iptables at all) fall back to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshviz.engine.core.model import Family
from meshviz.engine.istio.pod import settings_from_pod

RECONSTRUCTED = "reconstructed, not captured"


class ReconstructionError(ValueError):
    """The pod spec does not say how the capture was programmed (`unknown`), or the regenerated rules do not
    parse (`bad_output`, a bug in the generator); `why` is the reason without the preamble."""

    def __init__(self, kind: str, why: str, message: str) -> None:
        self.kind = kind
        self.why = why
        super().__init__(message)


@dataclass(frozen=True)
class Reconstruction:
    iptables: str
    ip6tables: str
    ip_rule: str
    ip_route: str
    notes: tuple[str, ...]
    ip6_rule: str = ""
    ip6_route: str = ""
    source: str = ""  # "istio-init's arguments" or "the istio-cni annotations"


def reconstruct_from_pod(pod: Mapping[str, Any], reason: str) -> Reconstruction:
    """The rules Istio programs in `pod`; `reason` (why they were not captured) opens the first note."""
    ps = settings_from_pod(pod)
    if not ps.applies or ps.errors:
        why = "; ".join(f"{e.name}: {e.message}" for e in ps.errors) or "; ".join(ps.notes) or "nothing programs it"
        raise ReconstructionError("unknown", why, f"the rules cannot be reconstructed from the pod spec: {why}")
    gen = ps.generate()
    if gen.errors:
        e = gen.errors[0]
        why = f"{e.source}:{e.line}:{e.column}: {e.message}: {e.text.strip()[:200]}"
        raise ReconstructionError("bad_output", why, f"the regenerated rules do not parse: {why}")
    commands = gen.ip_commands()
    rules = [c for c in commands if c.startswith(("ip rule", "ip -4 rule"))]
    routes = [c for c in commands if c.startswith(("ip route", "ip -4 route"))]
    rules6 = [c for c in commands if c.startswith("ip -6 rule")]
    routes6 = [c for c in commands if c.startswith("ip -6 route")]
    source = "istio-init's arguments" if ps.flavour != "cni-plugin" else "the istio-cni annotations"
    notes = (
        f"{RECONSTRUCTED}: {reason}; the iptables rules"
        + (" and policy routing" if rules or rules6 else "")
        + f" were regenerated from {source} with meshviz's Istio generator ({gen.flavour} layout). They show "
        "what Istio programs, not what the pod has now; main/local routes and sysctls were not collected, so "
        "the engine assumes kernel defaults for them.",
        *(f"reconstruction: {n}" for n in (*ps.notes, *gen.notes)),
    )
    return Reconstruction(
        iptables=gen.text(Family.IPV4) if Family.IPV4 in gen.families else "",
        ip6tables=gen.text(Family.IPV6) if Family.IPV6 in gen.families else "",
        ip_rule="".join(r + "\n" for r in rules),
        ip_route="".join(r + "\n" for r in routes),
        notes=notes,
        ip6_rule="".join(r + "\n" for r in rules6),
        ip6_route="".join(r + "\n" for r in routes6),
        source=source,
    )
