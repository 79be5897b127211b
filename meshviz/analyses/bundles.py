"""Evidence bundles, `istioctl bug-report` archives and merged Envoy inputs as analyses: the Django-side shell.

The engine reads them (`meshviz.engine.evidence.bundle`, `meshviz.engine.evidence.bugreport`, `meshviz.engine.envoy.proxyconfig`,
all bounded and pure); this module maps the engine's evidence kinds onto the Analysis fields, validates
with the same parsers as an upload (`services.validate_evidence`, errors renamed to the archive member they
came from) and creates the analyses.

`KIND_FIELDS` and `analysis_fields()` are the one place an evidence kind meets an Analysis field: a new kind
is wired by adding it to `KIND_FIELDS` once the Analysis has the field and `services.validate_evidence` takes
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshviz.engine.api import (
    ArchiveError,
    Bundle,
    PodEvidence,
    PodIdentity,
    merge_envoy_inputs,
    pod_evidence,
    read_bug_report,
    read_bundle,
)

from . import services
from .models import Analysis

#: engine evidence kind -> Analysis field (the kinds the Analysis stores today)
KIND_FIELDS: dict[str, str] = {
    "iptables": "iptables",
    "ip6tables": "ip6tables",
    "ip_rule": "ip_rule",
    "ip6_rule": "ip6_rule",
    "ip_route": "ip_route",
    "ip6_route": "ip6_route",
    "addr": "addr",
    "nftables": "nftables",
    "sysctl": "sysctl",
    "envoy": "envoy_config_dump",
}
#: where a bundle is named in errors when the upload carries no file name
BUNDLE_SOURCE = "bundle"


def archive_error(exc: ArchiveError) -> dict[str, Any]:
    """An ArchiveError in the API's error shape: source the archive, text the member, message the problem."""
    return services.error(exc.source, str(exc), text=exc.member)


def analysis_fields(
    evidence: Mapping[str, str], identity: PodIdentity, *, reconstructed: bool, notes: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """`services.create_analysis` keyword arguments for evidence kinds + a pod identity."""
    fields: dict[str, Any] = {field: evidence.get(kind, "") for kind, field in KIND_FIELDS.items()}
    fields.update(
        pod_ip=identity.pod_ip,
        pod_name=identity.name,
        namespace=identity.namespace,
        proxy_uid=identity.proxy_uid,
        proxy_gid=identity.proxy_gid,
        labels=dict(identity.labels),
        app_ports=list(identity.app_ports),
        origin=Analysis.Origin.RECONSTRUCTED if reconstructed else Analysis.Origin.CAPTURED,
        origin_notes=list(notes),
    )
    return fields


def validate(
    evidence: Mapping[str, str], members: Mapping[str, str], pod_ip: str, source: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`services.validate_evidence` on evidence kinds, each error's source renamed to its archive member."""
    texts: dict[str, Any] = {field: evidence.get(kind) or None for kind, field in KIND_FIELDS.items()}
    texts["iptables"] = texts["iptables"] or ""
    errors, warnings = services.validate_evidence(pod_ip=pod_ip, **texts)
    engine_name = {services.SOURCES[field]: kind for kind, field in KIND_FIELDS.items()}
    for item in (*errors, *warnings):
        kind = engine_name.get(str(item.get("source")))
        if kind is not None:
            member = members.get(kind) or f"{kind} (reconstructed from the pod spec)"
            item["source"] = f"{source}:{member}"
    return errors, warnings


def read_uploaded_bundle(data: bytes, source: str) -> tuple[Bundle | None, list[dict[str, Any]]]:
    """The bundle, or the errors naming the member and the problem."""
    try:
        return read_bundle(data, source=source or BUNDLE_SOURCE), []
    except ArchiveError as exc:
        return None, [archive_error(exc)]


def bundle_analysis_fields(bundle: Bundle) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(create_analysis fields, errors, warnings) for a bundle."""
    errors, warnings = validate(bundle.evidence, bundle.members, bundle.identity.pod_ip, bundle.source)
    fields = analysis_fields(
        bundle.evidence, bundle.identity, reconstructed=bundle.reconstructed, notes=list(bundle.notes)
    )
    return fields, errors, warnings


def merge_envoy(inputs: list[tuple[str, str]]) -> tuple[str, list[dict[str, Any]]]:
    """Several Envoy inputs (proxy-config outputs, a dump) merged into one dump text, or the errors."""
    merged = merge_envoy_inputs(inputs)
    return merged.text, [e.to_dict() for e in merged.errors]


def list_bug_report(data: bytes, source: str) -> list[dict[str, Any]]:
    """The archive's sidecar pods (namespace, name, mode, version, pod_ip, has_config_dump); ArchiveError."""
    return [p.to_dict() for p in read_bug_report(data, source=source).pods]


def bug_report_analyses(
    data: bytes, source: str, pods: list[tuple[str, str]], *, owner: Any
) -> tuple[list[Analysis], list[dict[str, Any]]]:
    """One analysis per picked pod (all or none: errors create nothing); raises ArchiveError for the archive."""
    report = read_bug_report(data, source=source, pods=pods)
    prepared: list[tuple[PodEvidence, list[dict[str, Any]]]] = []
    all_errors: list[dict[str, Any]] = []
    for ns, name in pods:
        ev = pod_evidence(report, ns, name)
        errors, warnings = validate(ev.evidence, ev.members, ev.identity.pod_ip, source)
        all_errors += errors
        prepared.append((ev, warnings))
    if all_errors:
        return [], all_errors
    created = []
    for ev, warnings in prepared:
        fields = analysis_fields(ev.evidence, ev.identity, reconstructed=True, notes=list(ev.notes))
        created.append(services.create_analysis(**fields, warnings=warnings, owner=owner))
    return created, []
