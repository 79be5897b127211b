"""`istioctl bug-report` archives: the sidecar pods they hold and each pod's evidence.

Layout (Istio's `tools/bug-report`: `archive.go`, `content.go`, `common.go`): everything under one
`bug-report/` directory; `cluster/k8s-resources` is `kubectl get --all-namespaces all,... -o yaml` (a `List`
whose items include every Pod); each proxy's Envoy admin output is in `proxies/<namespace>/<pod>/` with one
file per admin URL (`config_dump`, `clusters`, `listeners`, `certs`, `server_info`, `stats/prometheus` ...);
istiod's debug output under `istio/`, `analyze/`, logs.  There is no iptables output in it: the rules of a pod
are reconstructed from its spec with the engine's Istio generator and marked "reconstructed, not captured".

    report = read_bug_report(data, source="bug-report.tar.gz")           # lists; reads no config dump
    report.pods                      # [BugReportPod(namespace, name, mode, version, has_config_dump, ...)]
    report = read_bug_report(data, source=..., pods={("hr2", "geo-...")})  # also reads those pods' dumps
    evidence = pod_evidence(report, "hr2", "geo-...")                     # kinds -> text, identity, notes

Read within `meshviz.engine.evidence.archive` bounds; YAML aliases are refused (no "billion laughs").
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from meshviz.engine.evidence.archive import ArchiveError, ArchiveLimits, member_text, read_members
from meshviz.engine.evidence.podspec import PodIdentity, has_sidecar, pod_identity
from meshviz.engine.istio.reconstruct import RECONSTRUCTED, ReconstructionError, reconstruct_from_pod

#: Bug reports of a large mesh hold many files (logs, per-proxy admin output): more members, larger total.
BUG_REPORT_LIMITS = ArchiveLimits(
    max_members=20_000, max_member_bytes=64 * 1024 * 1024, max_total_bytes=512 * 1024 * 1024
)
_PROXY_DUMP = re.compile(r"(?:^|/)proxies/([^/]+)/([^/]+)/config_dump$")
_RESOURCES = re.compile(r"(?:^|/)cluster/k8s-resources$")


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader refusing aliases: kubectl never writes them, and they are how a YAML bomb grows."""

    source = "bug-report"
    member = ""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ArchiveError(self.source, self.member, f"YAML alias at line {mark.line + 1}: aliases are refused")
        return super().compose_node(parent, index)


@dataclass(frozen=True)
class BugReportPod:
    namespace: str
    name: str
    mode: str
    version: str
    pod_ip: str
    has_config_dump: bool
    pod: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "mode": self.mode,
            "version": self.version,
            "pod_ip": self.pod_ip,
            "has_config_dump": self.has_config_dump,
        }


@dataclass(frozen=True)
class BugReport:
    source: str
    pods: tuple[BugReportPod, ...]
    dumps: dict[tuple[str, str], tuple[str, str]]  # (ns, pod) -> (member, config dump text), for the pods asked
    resources_member: str


@dataclass(frozen=True)
class PodEvidence:
    """One pod's evidence from the archive: kinds -> text (`iptables`, `ip_rule`, `ip_route`, `envoy`)."""

    identity: PodIdentity
    evidence: dict[str, str]
    members: dict[str, str]
    notes: tuple[str, ...]
    reconstructed: bool = True


def _load_yaml(text: str, source: str, member: str) -> list[Any]:
    loader = _NoAliasLoader(text)
    loader.source, loader.member = source, member
    try:
        docs: list[Any] = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ArchiveError(source, member, f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    finally:
        loader.dispose()


def _pods_in(docs: list[Any]) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = []
    for doc in docs:
        items: list[Any] = doc["items"] if isinstance(doc, dict) and isinstance(doc.get("items"), list) else [doc]
        for item in items:
            if isinstance(item, dict) and item.get("kind") == "Pod" and isinstance(item.get("metadata"), dict):
                pods.append(item)
    return pods


def read_bug_report(
    data: bytes,
    *,
    source: str = "bug-report",
    pods: Collection[tuple[str, str]] = (),
    limits: ArchiveLimits | None = None,
) -> BugReport:
    """The sidecar pods of an `istioctl bug-report` archive, and the config dumps of `pods` (namespace, name)."""
    wanted = set(pods)

    def want(name: str) -> bool:
        if _RESOURCES.search(name):
            return True
        m = _PROXY_DUMP.search(name)
        return m is not None and (m.group(1), m.group(2)) in wanted

    names: list[str] = []
    files = read_members(data, source=source, want=want, limits=limits or BUG_REPORT_LIMITS, names=names)
    resources = [n for n in files if _RESOURCES.search(n)]
    if not resources:
        raise ArchiveError(
            source,
            "bug-report/cluster/k8s-resources",
            "missing: not an istioctl bug-report archive (it holds the cluster's resources there)",
        )
    if len(resources) > 1:
        raise ArchiveError(source, resources[1], "a second cluster/k8s-resources: one bug report per archive")
    member = resources[0]
    docs = _load_yaml(member_text(files[member], source, member), source, member)
    with_dump = {(m.group(1), m.group(2)): n for n in names if (m := _PROXY_DUMP.search(n))}
    found: list[BugReportPod] = []
    for pod in _pods_in(docs):
        if not has_sidecar(pod):
            continue
        ident = pod_identity(pod)
        found.append(
            BugReportPod(
                namespace=ident.namespace,
                name=ident.name,
                mode=ident.interception_mode,
                version=ident.istio_version,
                pod_ip=ident.pod_ip,
                has_config_dump=(ident.namespace, ident.name) in with_dump,
                pod=pod,
            )
        )
    found.sort(key=lambda p: (p.namespace, p.name))
    known = {(p.namespace, p.name) for p in found}
    for ns, name in sorted(wanted - known):
        raise ArchiveError(source, f"{ns}/{name}", "no such sidecar pod in the archive's cluster/k8s-resources")
    dumps = {key: (n, member_text(files[n], source, n)) for key, n in with_dump.items() if key in wanted and n in files}
    return BugReport(source=source, pods=tuple(found), dumps=dumps, resources_member=member)


def pod_evidence(report: BugReport, namespace: str, name: str) -> PodEvidence:
    """One pod's evidence: its config dump (when the archive has it) and rules reconstructed from its spec."""
    pod = next((p for p in report.pods if (p.namespace, p.name) == (namespace, name)), None)
    if pod is None:
        raise ArchiveError(report.source, f"{namespace}/{name}", "no such sidecar pod in the archive")
    identity = pod_identity(pod.pod)
    if not identity.pod_ip:
        raise ArchiveError(report.source, report.resources_member, f"pod {namespace}/{name} has no status.podIP")
    try:
        r = reconstruct_from_pod(pod.pod, "an istioctl bug-report archive holds no iptables output")
    except ReconstructionError as exc:
        raise ArchiveError(report.source, report.resources_member, f"pod {namespace}/{name}: {exc}") from exc
    evidence: dict[str, str] = {"iptables": r.iptables}
    members: dict[str, str] = {"iptables": ""}
    for kind, text in (("ip6tables", r.ip6tables), ("ip_rule", r.ip_rule), ("ip_route", r.ip_route)):
        if text:
            evidence[kind], members[kind] = text, ""
    notes = [f"from the istioctl bug-report archive {report.source}", *r.notes]
    dump = report.dumps.get((namespace, name))
    if dump is not None:
        members["envoy"], evidence["envoy"] = dump
    else:
        notes.append(f"the archive has no config_dump for {namespace}/{name}: no Envoy evidence")
    return PodEvidence(identity=identity, evidence=evidence, members=members, notes=tuple(notes))


def pod_keys(values: Mapping[str, Any] | Collection[str]) -> list[tuple[str, str]]:
    """ "namespace/name" strings as (namespace, name) keys; ValueError names a malformed one."""
    keys: list[tuple[str, str]] = []
    for v in values:
        ns, sep, name = str(v).strip().partition("/")
        if not sep or not ns or not name or "/" in name:
            raise ValueError(f"expected NAMESPACE/POD, got {v!r}")
        keys.append((ns, name))
    return keys


__all__ = [
    "BUG_REPORT_LIMITS",
    "RECONSTRUCTED",
    "BugReport",
    "BugReportPod",
    "PodEvidence",
    "pod_evidence",
    "read_bug_report",
]
