"""The home page: a signed-in user's dashboard, or what meshviz answers for a visitor.

Signed in: the recent analyses of the user and their teams, each with a verdict badge, its pod, namespace, mode
and origin; search and filters; the bundled examples; clusters and watched pods, the ones whose verdict changed
flagged. Logged out: a few lines on what meshviz answers and the public examples.

Badges are read from two small JSON paths of the stored results (the first story's verdict and the one-line
summary), never from the whole results, which may be megabytes for a pod with a large Envoy dump.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest

from meshviz.analyses import access, examples
from meshviz.analyses.models import Analysis

#: analyses read for one dashboard page (badges are computed in Python, so filters apply to these)
SCAN = 300
#: analyses shown
SHOWN = 50

#: badge key -> (label shown in the filter, tone)
BADGES: dict[str, tuple[str, str]] = {
    "client-ip": ("client IP preserved", "ok"),
    "127.0.0.6": ("application sees 127.0.0.6", "warn"),
    "127.0.0.1": ("application sees 127.0.0.1", "warn"),
    "other-ip": ("application sees another address", "warn"),
    "outbound-ok": ("outbound works", "ok"),
    "loop": ("loop", "bad"),
    "503-uf": ("503 UF", "bad"),
    "fails": ("fails", "bad"),
    "pending": ("running", "neutral"),
    "error": ("analysis failed", "bad"),
}


@dataclass(frozen=True)
class Badge:
    key: str
    text: str
    tone: str  # ok | warn | bad | neutral


def badge(state: str, verdict: dict[str, Any] | None, client: str | None = None) -> Badge:
    """The verdict of an analysis as a short badge (`verdict`: its first connection's verdict dict)."""
    if state in (Analysis.State.QUEUED, Analysis.State.RUNNING) and not verdict:
        return Badge("pending", "running", "neutral")
    if state == Analysis.State.FAILED and not verdict:
        return Badge("error", "analysis failed", "bad")
    if not isinstance(verdict, dict):
        return Badge("pending", "no result yet", "neutral")
    failure = str(verdict.get("failure") or "")
    if failure:
        if failure == "LOOP" or verdict.get("loop"):
            return Badge("loop", "loop", "bad")
        if failure.startswith("REPLY_ESCAPES") or failure in ("UPSTREAM_CONNECT_FAILURE", "TIMEOUT"):
            return Badge("503-uf", "503 UF", "bad")
        return Badge("fails", f"fails: {failure.replace('_', ' ').lower()}", "bad")
    peer = verdict.get("app_peer_ip")
    if peer:
        client_ip = (client or "").rsplit(":", 1)[0].strip("[]")
        if client_ip and peer == client_ip:
            return Badge("client-ip", "client IP preserved", "ok")
        if peer in ("127.0.0.6", "127.0.0.1"):
            return Badge(peer, f"app sees {peer}", "warn")
        return Badge("other-ip", f"app sees {peer}", "warn")
    if verdict.get("destination_reached"):
        return Badge("outbound-ok", "outbound works", "ok")
    return Badge("fails", "no answer", "neutral")


def _first_client(connections: Any) -> str | None:
    if isinstance(connections, list):
        for c in connections:
            if isinstance(c, dict) and c.get("direction") == "inbound":
                return str(c.get("client") or "")
    return None


def _rows(qs: QuerySet[Analysis]) -> list[dict[str, Any]]:
    rows = qs.values(
        "slug",
        "created",
        "state",
        "pod_ip",
        "pod_name",
        "namespace",
        "interception_mode",
        "origin",
        "public",
        "owner__username",
        "connections",
        "results__summary",
        "results__stories__0__verdict",
    )
    out = []
    for r in rows:
        b = badge(r["state"], r["results__stories__0__verdict"], _first_client(r["connections"]))
        out.append(
            {
                "slug": r["slug"],
                "permalink": f"/a/{r['slug']}/",
                "created": r["created"],
                "state": r["state"],
                "pod_ip": r["pod_ip"],
                "pod_name": r["pod_name"],
                "namespace": r["namespace"],
                "mode": r["interception_mode"],
                "origin": Analysis.Origin(r["origin"]).label if r["origin"] in Analysis.Origin.values else r["origin"],
                "origin_key": r["origin"],
                "public": r["public"],
                "owner": r["owner__username"] or "",
                "summary": r["results__summary"] or "",
                "badge": b,
            }
        )
    return out


@dataclass(frozen=True)
class Filters:
    q: str = ""
    namespace: str = ""
    verdict: str = ""
    mode: str = ""

    @classmethod
    def of(cls, request: HttpRequest) -> Filters:
        g = request.GET
        return cls(
            q=g.get("q", "").strip()[:200],
            namespace=g.get("namespace", "").strip()[:63],
            verdict=g.get("verdict", "").strip() if g.get("verdict", "") in BADGES else "",
            mode=g.get("mode", "").strip().upper() if g.get("mode", "").upper() in ("REDIRECT", "TPROXY") else "",
        )

    @property
    def active(self) -> bool:
        return bool(self.q or self.namespace or self.verdict or self.mode)


def recent_analyses(user: Any, f: Filters) -> tuple[list[dict[str, Any]], list[str]]:
    """(the analyses shown, every namespace among the user's analyses) for the filters `f`."""
    mine = access.member_of_analysis(user)
    namespaces = sorted({n for n in mine.values_list("namespace", flat=True) if n})
    qs = mine
    if f.q:
        qs = qs.filter(
            Q(pod_name__icontains=f.q)
            | Q(namespace__icontains=f.q)
            | Q(pod_ip__icontains=f.q)
            | Q(slug__startswith=f.q)
            | Q(results__summary__icontains=f.q)
        )
    if f.namespace:
        qs = qs.filter(namespace=f.namespace)
    if f.mode:
        qs = qs.filter(interception_mode=f.mode)
    rows = _rows(qs.order_by("-created")[:SCAN])
    if f.verdict:
        rows = [r for r in rows if r["badge"].key == f.verdict]
    return rows[:SHOWN], namespaces


def public_examples() -> list[dict[str, Any]]:
    """The loaded bundled examples (public analyses of origin `example`), newest of each pod first, for visitors."""
    rows = _rows(Analysis.objects.filter(public=True, origin=Analysis.Origin.EXAMPLE).order_by("-created")[:20])
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        key = (r["summary"], r["mode"])
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def clusters_and_watched(user: Any) -> dict[str, Any]:
    from meshviz.clusters.models import Cluster, WatchedPod  # the clusters app is optional for the home page

    watched = list(
        WatchedPod.objects.filter(owner=user).select_related("cluster").order_by("-verdict_changed", "namespace", "pod")
    )
    return {
        "clusters": list(Cluster.objects.filter(owner=user).order_by("name")),
        "watched": watched,
        "changed": sum(1 for w in watched if w.verdict_changed),
    }


def context(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    ctx: dict[str, Any] = {"examples": examples.examples(), "public_examples": public_examples(), "badges": BADGES}
    if not user.is_authenticated:
        return ctx
    f = Filters.of(request)
    rows, namespaces = recent_analyses(user, f)
    ctx.update(
        {
            "filters": f,
            "recent": rows,
            "namespaces": namespaces,
            "has_any": f.active or bool(rows) or access.member_of_analysis(user).exists(),
            **clusters_and_watched(user),
        }
    )
    return ctx
