"""Evidence bundles: `meshviz-<namespace>-<pod>.tar.gz` as `collect.sh` writes it.

    bundle = read_bundle(data, source="meshviz-hr2-geo.tar.gz")
    bundle.evidence       # {"iptables": "...", "ip_rule": "...", "envoy": "...", ...}: the kinds present
    bundle.identity       # PodIdentity from pod.json (pod IP, proxy uid/gid, mode, labels, app ports)
    bundle.reconstructed  # the capture was refused or failed: rules regenerated from the pod spec
    bundle.notes          # what a user should know (how it was collected, what failed, reconstruction)

The evidence mapping is keyed by the engine's evidence kinds (`KINDS`): `iptables`, `ip6tables`, `nftables`,
`ip_rule`, `ip6_rule`, `ip_route`, `ip6_route`, `addr` (`ip -o addr`), `sysctl`, `envoy`; `members` says which
archive member each came from, so an error can name it.

Layout (one top-level directory `meshviz-<ns>-<pod>/`, or none): `manifest.json` (required: `format`
"meshviz-bundle", `format_version` <= `FORMAT_VERSION`, `collected`, `failed`, `capture.status`), `pod.json`,
`config_dump.json`, `iptables-legacy-save.txt`, `iptables-nft-save.txt` (and `ip6tables-...`; plain
`iptables-save.txt` too), `nft-ruleset.txt`, `ip-rule.txt`, `ip6-rule.txt`, `ip-route.txt`, `ip6-route.txt`,
`ip-addr.txt`, `sysctl.txt`.  Other members are skipped unread.  The archive is read within
`meshviz.engine.evidence.archive` bounds; every problem is an `ArchiveError` naming the member.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshviz.engine.evidence.archive import ArchiveError, ArchiveLimits, member_text, read_members
from meshviz.engine.evidence.kinds import EVIDENCE_KINDS
from meshviz.engine.evidence.podspec import PodIdentity, pod_identity
from meshviz.engine.istio.reconstruct import RECONSTRUCTED, ReconstructionError, reconstruct_from_pod

FORMAT = "meshviz-bundle"
FORMAT_VERSION = 1
#: Evidence kinds, in the engine's names (evidence/kinds.py).
KINDS = tuple(k.name for k in EVIDENCE_KINDS)

#: The iptables backends a bundle may hold (legacy, nft, whatever `iptables-save` is), chosen between by
#: `_choose_backend`.
BACKENDS = {k.name: k.files for k in EVIDENCE_KINDS if len(k.files) > 1}
#: member file name -> evidence kind
MEMBER_KINDS = {f: k.name for k in EVIDENCE_KINDS if k.name not in BACKENDS for f in k.files}
KNOWN = frozenset({"manifest.json", "pod.json", *MEMBER_KINDS, *BACKENDS["iptables"], *BACKENDS["ip6tables"]})

#: Bundles are small (a config dump is the largest part): tighter bounds than bug-report archives.
BUNDLE_LIMITS = ArchiveLimits(max_members=64, max_member_bytes=16 * 1024 * 1024, max_total_bytes=48 * 1024 * 1024)

_RULE = re.compile(r"^-A \S+", re.M)


@dataclass(frozen=True)
class Bundle:
    source: str
    manifest: dict[str, Any]
    pod: dict[str, Any] | None
    identity: PodIdentity
    evidence: dict[str, str]
    members: dict[str, str]  # kind -> member name it came from ("" for reconstructed evidence)
    reconstructed: bool = False
    notes: tuple[str, ...] = ()


def _json_member(files: Mapping[str, bytes], name: str, source: str, prefix: str) -> Any:
    text = member_text(files[name], source, prefix + name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = text.splitlines()[exc.lineno - 1] if 0 < exc.lineno <= len(text.splitlines()) else ""
        raise ArchiveError(
            source, prefix + name, f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}: {line[:120]!r}"
        ) from exc


def _choose_backend(family: str, texts: dict[str, str], notes: list[str]) -> tuple[str, str] | None:
    """(member, text) of the backend holding the rules, as istio-iptables chooses: the one with rules
    (Istio's chains first), else the first one present."""
    present = [(m, texts[m]) for m in BACKENDS[family] if m in texts]
    if not present:
        return None
    with_rules = [(m, t) for m, t in present if _RULE.search(t)]
    istio = [(m, t) for m, t in with_rules if "ISTIO_" in t]
    chosen = (istio or with_rules or present)[0]
    if len(with_rules) > 1:
        others = ", ".join(m for m, _ in with_rules if m != chosen[0])
        notes.append(f"{family}: rules in more than one backend; analysed {chosen[0]} (also: {others})")
    elif len(present) > 1 and with_rules:
        notes.append(f"{family}: {chosen[0]} holds the rules")
    return chosen


def _top_dir(names: list[str], source: str) -> str:
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    flat = [n for n in names if "/" not in n]
    if len(tops) > 1 or (tops and flat):
        raise ArchiveError(source, sorted(names)[0], "a bundle holds one directory (meshviz-<ns>-<pod>/) or none")
    return f"{tops.pop()}/" if tops else ""


def read_bundle(data: bytes, *, source: str = "bundle", limits: ArchiveLimits | None = None) -> Bundle:
    """Read and check a bundle (see the module doc); raises ArchiveError naming the member and the problem."""

    def want(name: str) -> bool:
        return name.count("/") <= 1 and name.rsplit("/", 1)[-1] in KNOWN

    raw = read_members(data, source=source, want=want, limits=limits or BUNDLE_LIMITS)
    prefix = _top_dir(list(raw), source) if raw else ""
    files = {n[len(prefix) :]: b for n, b in raw.items() if n.startswith(prefix) and "/" not in n[len(prefix) :]}
    if "manifest.json" not in files:
        raise ArchiveError(source, f"{prefix}manifest.json", "missing: not a meshviz bundle (collect.sh writes one)")
    manifest = _json_member(files, "manifest.json", source, prefix)
    m = f"{prefix}manifest.json"
    if not isinstance(manifest, dict):
        raise ArchiveError(source, m, "expected a JSON object")
    if manifest.get("format") != FORMAT:
        raise ArchiveError(source, m, f"format is {manifest.get('format')!r}, expected {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArchiveError(source, m, f"format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ArchiveError(source, m, f"format_version {version} is newer than this meshviz reads ({FORMAT_VERSION})")

    pod: dict[str, Any] | None = None
    if "pod.json" in files:
        obj = _json_member(files, "pod.json", source, prefix)
        if not isinstance(obj, dict) or obj.get("kind", "Pod") != "Pod":
            raise ArchiveError(source, f"{prefix}pod.json", "expected a Pod object (kubectl get pod -o json)")
        pod = obj
    identity = pod_identity(pod) if pod else PodIdentity()

    texts = {name: member_text(b, source, f"{prefix}{name}") for name, b in files.items() if name != "manifest.json"}
    texts = {name: t for name, t in texts.items() if t.strip()}  # an empty listing is no evidence
    notes: list[str] = []
    capture: dict[str, Any] = manifest["capture"] if isinstance(manifest.get("capture"), dict) else {}
    how = capture.get("how") or capture.get("image") or ""
    if how:
        notes.append(f"captured by {manifest.get('tool', 'collect.sh')}: {how}")
    for f in manifest.get("failed") or []:
        if isinstance(f, dict):
            notes.append(f"not collected: {f.get('what', '?')}: {f.get('why', '')}".rstrip(": "))

    evidence: dict[str, str] = {}
    members: dict[str, str] = {}
    for family in BACKENDS:
        chosen = _choose_backend(family, texts, notes)
        if chosen is not None:
            members[family], evidence[family] = f"{prefix}{chosen[0]}", chosen[1]
    for name, kind in MEMBER_KINDS.items():
        if name in texts:
            evidence[kind] = texts[name]
            members[kind] = f"{prefix}{name}"

    reconstructed = False
    if "iptables" not in evidence:
        status = str(capture.get("status") or "")
        reason = next(
            (str(f.get("why")) for f in manifest.get("failed") or [] if isinstance(f, dict) and f.get("why")),
            f"the bundle has no iptables-save output (capture {status or 'not recorded'})",
        )
        if pod is None:
            raise ArchiveError(
                source, f"{prefix}pod.json", f"missing, and the bundle has no iptables-save output either ({reason})"
            )
        try:
            r = reconstruct_from_pod(pod, reason)
        except ReconstructionError as exc:
            raise ArchiveError(source, f"{prefix}pod.json", f"no iptables-save output and {exc}") from exc
        evidence["iptables"], members["iptables"] = r.iptables, ""
        if r.ip6tables and "ip6tables" not in evidence:
            evidence["ip6tables"], members["ip6tables"] = r.ip6tables, ""
        for kind, text in (("ip_rule", r.ip_rule), ("ip_route", r.ip_route)):
            if kind not in evidence:
                evidence[kind], members[kind] = text, ""
        notes.extend(r.notes)
        reconstructed = True
    if not identity.pod_ip:
        raise ArchiveError(source, f"{prefix}pod.json", "no pod IP: the bundle needs pod.json with status.podIP")
    return Bundle(
        source=source,
        manifest=manifest,
        pod=pod,
        identity=identity,
        evidence=evidence,
        members=members,
        reconstructed=reconstructed,
        notes=tuple(notes),
    )


__all__ = ["BUNDLE_LIMITS", "FORMAT", "FORMAT_VERSION", "KINDS", "RECONSTRUCTED", "Bundle", "read_bundle"]
