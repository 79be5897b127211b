"""The analysis service: validate evidence, choose connections, run the engine and store its results.

Django-side glue around the pure engine (meshviz.engine); nothing here talks to the network: the
connections are simulated.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meshviz.accounts import audit
from meshviz.engine.api import (
    EVIDENCE_KINDS,
    MAX_CONNECTIONS,
    Evidence,
    analyse,
    identity_of,
    iptables_once,
    load_pod,
    mode_of,
    redact_config_dump_text,
    whatif,
)
from meshviz.engine.api import verdict_line as engine_verdict_line

from . import examples
from .models import ENGINE_VERSION, Analysis

logger = logging.getLogger(__name__)

# The default connections (and their constants) are the engine's: the explorer's what-if re-traces the same ones.
DEFAULT_APP_GID = whatif.DEFAULT_APP_GID
DEFAULT_APP_PORT = whatif.DEFAULT_APP_PORT
DEFAULT_APP_UID = whatif.DEFAULT_APP_UID
DEFAULT_CLIENT = whatif.DEFAULT_CLIENT
DEFAULT_OUTBOUND_DST = whatif.DEFAULT_OUTBOUND_DST
verdict_line = engine_verdict_line

#: The evidence fields of the form, the API and the model: the engine's evidence kinds (EVIDENCE_KINDS).
EVIDENCE_FIELDS = tuple(k.field for k in EVIDENCE_KINDS)
#: The `source` named in errors for each evidence field (the engine's names).
SOURCES = {k.field: k.source for k in EVIDENCE_KINDS}
#: The engine's parser for each evidence field (each returns errors and warnings besides what it parsed).  The rules
#: go through the engine's parse-once cache (`iptables_once`): the parse that validates an upload is the one its
#: stories, comparison and fix then read (issue 15: a node-sized ruleset was parsed five times per upload).
PARSERS: dict[str, Callable[..., Any]] = {
    k.field: functools.partial(iptables_once, family=k.family) if k.name in ("iptables", "ip6tables") else k.parse
    for k in EVIDENCE_KINDS
}
#: Told (field, text, parse) of each piece of evidence an upload validated cleanly: meshviz.web.parsed keeps the
#: iptables parse for the pages (issue 15) without this module importing the web app.
PARSE_LISTENERS: list[Callable[[str, str, Any], None]] = []


def error(source: str, message: str, line: int = 0, column: int = 0, text: str = "") -> dict[str, Any]:
    """An error in the API's shape (the engine's ParseError fields)."""
    return {"source": source, "line": line, "column": column, "text": text, "message": message}


def validate_evidence(
    *,
    iptables: str,
    ip_rule: str | None = None,
    ip_route: str | None = None,
    sysctl: str | None = None,
    envoy_config_dump: str | None = None,
    pod_ip: str | None = None,
    ip6tables: str | None = None,
    ip6_rule: str | None = None,
    ip6_route: str | None = None,
    addr: str | None = None,
    nftables: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parse every piece of evidence with the engine; returns (errors, warnings) as dicts.

    Errors carry source, line, column, the offending text and a message; an empty list means the
    evidence can be analysed.
    """
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    if pod_ip is not None:
        try:
            ipaddress.ip_address(pod_ip)
        except ValueError:
            errors.append(error("pod_ip", f"not an IP address: {pod_ip!r}", text=pod_ip))
    if not any(t and t.strip() for t in (iptables, ip6tables, nftables)):
        errors.append(
            error(
                "iptables",
                "iptables evidence is required (the output of iptables-save in the pod, or ip6tables-save for an "
                "IPv6-only pod, or `nft list ruleset` for a pod whose rules are native nftables)",
            )
        )
    given = {
        "iptables": iptables if iptables and iptables.strip() else None,
        "ip6tables": ip6tables,
        "ip_rule": ip_rule,
        "ip6_rule": ip6_rule,
        "ip_route": ip_route,
        "ip6_route": ip6_route,
        "addr": addr,
        "nftables": nftables,
        "sysctl": sysctl,
        "envoy_config_dump": envoy_config_dump,
    }
    for field, text in given.items():
        if text:
            try:
                parsed = PARSERS[field](text, source=SOURCES[field])
            except (RecursionError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                # The engine's parsers never raise on bad input (the fuzz tests hold them to it); should one still
                # do so, the visitor gets a 400 naming the file rather than a 500, and the bug is logged.
                logger.exception("validate_evidence: the %s parser raised", field)
                errors.append(error(SOURCES[field], f"meshviz could not read this input ({type(exc).__name__})"))
                continue
            errors += [e.to_dict() for e in parsed.errors]
            warnings += [w.to_dict() for w in parsed.warnings]
            if not parsed.errors:
                for listener in PARSE_LISTENERS:
                    listener(field, text, parsed)
    return errors, warnings


def pod_ip_from_evidence(texts: dict[str, Any]) -> str | None:
    """The pod IP the evidence determines (Envoy's node id, or the routes' / `ip addr`'s only pod address)."""
    pod = load_pod(
        iptables=texts.get("iptables") or None,
        ip6tables=texts.get("ip6tables") or None,
        ip_rule=texts.get("ip_rule") or None,
        ip6_rule=texts.get("ip6_rule") or None,
        ip_route=texts.get("ip_route") or None,
        ip6_route=texts.get("ip6_route") or None,
        addr=texts.get("addr") or None,
        nftables=texts.get("nftables") or None,
        sysctl=texts.get("sysctl") or None,
        envoy=texts.get("envoy_config_dump") or None,
    )
    return str(pod.profile.pod_ip) if pod.profile is not None and pod.profile.pod_ip is not None else None


def create_analysis(
    *,
    iptables: str,
    pod_ip: str,
    ip_rule: str = "",
    ip_route: str = "",
    sysctl: str = "",
    envoy_config_dump: str = "",
    ip6tables: str = "",
    ip6_rule: str = "",
    ip6_route: str = "",
    addr: str = "",
    nftables: str = "",
    pod_name: str = "",
    namespace: str = "",
    proxy_uid: int | None = None,
    proxy_gid: int | None = None,
    labels: dict[str, str] | None = None,
    app_ports: list[int] | None = None,
    connections: list[dict[str, Any]] | None = None,
    warnings: list[dict[str, Any]] | None = None,
    owner: Any = None,
    public: bool = False,
    origin: str = Analysis.Origin.UPLOAD,
    origin_notes: list[str] | None = None,
    derived_from: Analysis | None = None,
) -> Analysis:
    """Store validated evidence (the Envoy dump redacted) as a queued analysis with its connections.

    `owner` (a user, or None) and `public` decide who may read it (meshviz.analyses.access); `origin`,
    `origin_notes` and `derived_from` say where the evidence came from.
    """
    redactions = 0
    if envoy_config_dump:
        envoy_config_dump, redactions = redact_config_dump_text(envoy_config_dump)
    analysis = Analysis(
        iptables=iptables,
        ip_rule=ip_rule,
        ip_route=ip_route,
        sysctl=sysctl,
        envoy_config_dump=envoy_config_dump,
        ip6tables=ip6tables,
        ip6_rule=ip6_rule,
        ip6_route=ip6_route,
        addr=addr,
        nftables=nftables,
        envoy_redactions=redactions,
        pod_ip=pod_ip,
        pod_name=pod_name,
        namespace=namespace,
        proxy_uid=proxy_uid,
        proxy_gid=proxy_gid,
        labels=labels or {},
        app_ports=list(app_ports or []),
        parse_warnings=list(warnings or []),
        owner=owner,
        public=public,
        origin=origin,
        origin_notes=list(origin_notes or []),
        derived_from=derived_from,
    )
    # Who the pod is, when the upload did not say: the dump's node metadata (name, namespace, labels).
    ident = identity_of(evidence_of(analysis))
    analysis.pod_name = analysis.pod_name or ident.name
    analysis.namespace = analysis.namespace or ident.namespace
    analysis.labels = analysis.labels or dict(ident.labels)
    analysis.interception_mode = mode_of(evidence_of(analysis))
    analysis.connections = list(connections) if connections else default_connections(analysis)
    analysis.save()
    return analysis


def evidence_of(analysis: Analysis) -> Evidence:
    """The engine's Evidence for an analysis (empty texts are 'not given')."""
    return Evidence(
        iptables=analysis.iptables,
        pod_ip=str(analysis.pod_ip),
        ip_rule=analysis.ip_rule or None,
        ip_route=analysis.ip_route or None,
        ip6tables=analysis.ip6tables or None,
        ip6_rule=analysis.ip6_rule or None,
        ip6_route=analysis.ip6_route or None,
        addr=analysis.addr or None,
        nftables=analysis.nftables or None,
        sysctl=analysis.sysctl or None,
        envoy=analysis.envoy_config_dump or None,
        proxy_uid=analysis.proxy_uid,
        proxy_gid=analysis.proxy_gid,
        app_ports=tuple(int(p) for p in analysis.app_ports),
        labels=tuple(sorted((str(k), str(v)) for k, v in (analysis.labels or {}).items())),
        pod_name=analysis.pod_name or None,
        namespace=analysis.namespace or None,
    )


def default_connections(analysis: Analysis) -> list[dict[str, Any]]:
    """One inbound connection from a representative client to each application port, and one outbound.

    Application ports: `app_ports`, else the ports of the Envoy dump's inbound clusters, else 8080.
    """
    return whatif.default_connections(evidence_of(analysis))


def connection_label(conn: dict[str, Any], pod_ip: str) -> str:
    if conn["direction"] == "inbound":
        return f"{conn['client']} -> {pod_ip}:{conn['port']}"
    return f"application (uid {conn['app_uid']}) -> {conn['dst']}"


def compute_results(analysis: Analysis, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """The engine's analysis of every connection (meshviz.engine.api.analyse: every story, the REDIRECT/TPROXY
    comparison of every inbound connection, the fix for the first), stamped with version and revision.

    `progress(step, steps, doing)` is told before each step (meshviz.analyses.progress); by default, the one
    `run_analysis` was given."""
    result = analyse(evidence_of(analysis), analysis.connections, progress=progress or _PROGRESS.get())
    return {"engine_version": ENGINE_VERSION, "revision": analysis.revision, **result.to_dict()}


#: the progress reporter of the analysis being computed in this thread (run_analysis sets it)
_PROGRESS: contextvars.ContextVar[Callable[[int, int, str], None] | None] = contextvars.ContextVar(
    "meshviz_analysis_progress", default=None
)


class ResultTooLarge(Exception):
    """The results are larger than MESHVIZ_MAX_RESULT_BYTES: a failure, never retried."""


class TooManyConnections(ValueError):
    """More connections than MAX_CONNECTIONS for one analysis."""


def check_result_size(results: dict[str, Any]) -> None:
    limit = int(settings.MESHVIZ_MAX_RESULT_BYTES)
    size = len(json.dumps(results, default=str).encode("utf-8"))
    if size > limit:
        raise ResultTooLarge(
            f"the results take {size:,} bytes, more than the {limit:,}-byte limit (MESHVIZ_MAX_RESULT_BYTES): "
            f"simulate fewer connections ({len(results.get('stories') or [])} were asked for) or simpler rules"
        )


def run_analysis(analysis: Analysis, progress: Callable[[int, int, str], None] | None = None) -> Analysis:
    """Compute the results and store them; the previous results stay until the new ones are saved.

    Raises whatever the engine raises, and ResultTooLarge: the caller (the task) records failures.
    """
    revision = analysis.revision
    token = _PROGRESS.set(progress)
    try:
        results = compute_results(analysis)
    finally:
        _PROGRESS.reset(token)
    check_result_size(results)
    with transaction.atomic():
        # only what is compared: the evidence and the previous results (hundreds of KB of text and JSON on a typical
        # pod) are not read back to be replaced
        current = Analysis.objects.select_for_update().only("pk", "revision").get(pk=analysis.pk)
        if current.revision != revision:
            # The inputs changed while we computed: these results answer an older revision; a newer
            # task will store its own. Keep the state (queued) and store nothing.
            return Analysis.objects.get(pk=analysis.pk)
        # the caller's instance, whole, with the results: only these fields are written
        analysis.results = results
        analysis.engine_version = ENGINE_VERSION
        analysis.state = Analysis.State.DONE
        analysis.error = ""
        analysis.save(update_fields=["results", "engine_version", "state", "error", "updated"])
    return analysis


def add_connection(analysis: Analysis, conn: dict[str, Any]) -> Analysis:
    """Append a connection and queue a re-run (old results are kept until the new ones exist)."""
    with transaction.atomic():
        current = Analysis.objects.select_for_update().get(pk=analysis.pk)
        if len(current.connections) >= MAX_CONNECTIONS:
            raise TooManyConnections(
                f"an analysis simulates at most {MAX_CONNECTIONS} connections; it has {len(current.connections)}"
            )
        current.connections = [*current.connections, conn]
        current.revision += 1
        current.state = Analysis.State.QUEUED
        current.error = ""
        current.save(update_fields=["connections", "revision", "state", "error", "updated"])
    return current


def queue_rerun(analysis: Analysis) -> Analysis:
    """Mark the analysis queued for a re-run on demand; its results stay until the new ones are stored."""
    with transaction.atomic():
        current = Analysis.objects.select_for_update().get(pk=analysis.pk)
        current.state = Analysis.State.QUEUED
        current.error = ""
        current.save(update_fields=["state", "error", "updated"])
    return current


def set_sharing(
    analysis: Analysis, *, public: bool | None = None, teams: list[Any] | None = None, actor: Any = None
) -> Analysis:
    """Change who may see the analysis: the public flag and/or the teams (None leaves it as it is).

    A change is recorded in the audit log of `actor` (and of the owner)."""
    with transaction.atomic():
        before = (analysis.public, sorted(t.name for t in analysis.teams.all()))
        if public is not None and public != analysis.public:
            analysis.public = public
            analysis.save(update_fields=["public", "updated"])
        if teams is not None:
            analysis.teams.set(teams)
        after = (analysis.public, sorted(t.name for t in analysis.teams.all()))
        if after != before and actor is not None:
            audit.record(
                actor,
                "analysis.share",
                f"analysis {analysis.slug[:8]}… ({analysis.pod_name or analysis.pod_ip})",
                also=[analysis.owner] if analysis.owner else [],
                public=after[0],
                teams=after[1],
            )
    return analysis


def delete_analysis(analysis: Analysis, *, actor: Any = None, why: str = "deleted") -> None:
    """Delete an analysis (its evidence and results); recorded in the audit log."""
    with transaction.atomic():
        audit.record(
            actor if actor is not None else analysis.owner,
            "analysis.delete" if why == "deleted" else "analysis.expire",
            f"analysis {analysis.slug[:8]}… ({analysis.pod_name or analysis.pod_ip})",
            also=[analysis.owner] if analysis.owner else [],
            why=why,
        )
        analysis.delete()


def expired_analyses(now: Any = None) -> Any:
    """Analyses older than MESHVIZ_RETENTION_DAYS (none when it is 0), bundled examples excepted."""
    days = int(settings.MESHVIZ_RETENTION_DAYS)
    if days <= 0:
        return Analysis.objects.none()
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return Analysis.objects.filter(created__lt=cutoff).exclude(origin=Analysis.Origin.EXAMPLE)


def summary_line(analysis: Analysis, permalink: str) -> str:
    """One line fit for a chat message: who the pod is, the verdict (or the state) and the permalink."""
    who = (
        f"{analysis.namespace}/{analysis.pod_name}: "
        if analysis.pod_name and analysis.namespace
        else (f"{analysis.pod_name}: " if analysis.pod_name else "")
    )
    if analysis.state == Analysis.State.FAILED:
        why = analysis.error.splitlines()[0] if analysis.error else "unknown error"
        return f"meshviz: {who}the analysis failed ({why}) - {permalink}"
    if analysis.results and analysis.state == Analysis.State.DONE:
        return f"meshviz: {who}{analysis.results['summary']} - {permalink}"
    if analysis.results:
        return f"meshviz ({analysis.state}, previous result): {who}{analysis.results['summary']} - {permalink}"
    return f"meshviz: {who}analysis {analysis.state} - {permalink}"


class ExampleInvalid(ValueError):
    """A bundled example whose evidence does not validate (a bug in meshviz, not the visitor's input)."""


def create_from_example(example: examples.Example, *, owner: Any = None, public: bool = False) -> Analysis:
    """Create the analysis for a bundled example; the caller queues it."""
    fields = example.analysis_fields()
    errors, warnings = validate_evidence(pod_ip=example.pod_ip, **{name: fields[name] for name in examples.FILES})
    if errors:
        raise ExampleInvalid(f"bundled example {example.name} does not validate: {errors}")
    return create_analysis(
        **fields,
        warnings=warnings,
        owner=owner,
        public=public,
        origin=Analysis.Origin.EXAMPLE,
        origin_notes=[f"bundled example {example.name}"],
    )
