"""Alice's private world, mallory's own things, and a snapshot of alice's state to prove nothing changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver

from meshviz.accounts.models import ApiKey, Team, TeamInvitation
from meshviz.analyses import examples, services
from meshviz.analyses.models import Analysis
from meshviz.clusters import services as cluster_services
from meshviz.clusters.models import Cluster, CollectionJob, WatchedPod
from tests.web.explorer_support import MISSING_ROUTE, POLICY_ROUTE_EDITS, analysed_example

#: strings only alice's private objects contain: none may appear in a response to mallory or an anonymous client
MARKER = "alicesecretmarker"
PRIVATE_POD = f"{MARKER}-pod"
PRIVATE_NS = "alice-private-ns"
SHARED_POD = f"{MARKER}-teampod"
CLUSTER_NAME = f"{MARKER}-cluster"
WATCHED_POD = f"{MARKER}-watched"
WATCHED_NS = "alice-watched-ns"
TEAM_NAME = f"{MARKER}-team"
KEY_NAME = f"{MARKER}-key"
#: a comment in one of the private analysis' rules (shown by the explorer's rule table, structure, diff)
RULE_COMMENT = f"{MARKER}rule"

EDITS = json.dumps(POLICY_ROUTE_EDITS)


def _marked_analysis(owner: User, *, pod_name: str, public: bool = False) -> Analysis:
    example = examples.get(MISSING_ROUTE)
    assert example is not None
    ev = example.evidence()
    plain = "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN"
    assert plain in ev["iptables"]
    iptables = ev["iptables"].replace(
        plain, f'-A ISTIO_INBOUND -p tcp --dport 15020 -m comment --comment "{RULE_COMMENT}" -j RETURN', 1
    )
    analysis = services.create_analysis(
        iptables=iptables,
        ip_rule=ev["ip_rule"],
        ip_route=ev["ip_route"],
        sysctl=ev["sysctl"],
        envoy_config_dump=ev["envoy_config_dump"],
        pod_ip=example.pod_ip,
        pod_name=pod_name,
        namespace=PRIVATE_NS,
        labels={"app": MARKER},
        app_ports=list(example.app_ports),
        proxy_uid=example.proxy_uid,
        proxy_gid=example.proxy_gid,
        owner=owner,
        public=public,
    )
    analysis = services.run_analysis(analysis)
    assert analysis.state == Analysis.State.DONE, analysis.error
    return analysis


@dataclass
class World:
    alice: User
    mallory: User
    team: Team  # alice's team; mallory is not a member
    private: Analysis  # alice's, not shared
    shared: Analysis  # alice's, shared with `team` only
    public: Analysis  # alice's, public permalink (no private marker in it)
    mine: Analysis  # mallory's own private analysis
    cluster: Cluster
    job: CollectionJob
    watched: WatchedPod
    key: ApiKey
    key_plaintext: str
    mallory_key: str
    kube_token: str
    invitation: TeamInvitation  # alice is invited to another team (only alice may answer it)


def build_world(alice: User, mallory: User, fake_apiserver: Any) -> World:
    team = Team.objects.create(name=TEAM_NAME)
    team.members.add(alice)
    invitation = TeamInvitation.objects.create(team=Team.objects.create(name="inviting"), invitee=alice)
    private = _marked_analysis(alice, pod_name=PRIVATE_POD)
    shared = _marked_analysis(alice, pod_name=SHARED_POD)
    shared.teams.add(team)
    public = analysed_example(alice)
    public.public = True
    public.save(update_fields=["public"])
    mine = analysed_example(mallory)
    cluster = cluster_services.create_cluster(
        owner=alice, name=CLUSTER_NAME, in_cluster=False, kubeconfig=fake_apiserver.kubeconfig
    )
    watched = WatchedPod.objects.create(owner=alice, cluster=cluster, namespace=WATCHED_NS, pod=WATCHED_POD)
    job = CollectionJob.objects.create(
        owner=alice,
        cluster=cluster,
        namespace=PRIVATE_NS,
        pod=PRIVATE_POD,
        watched=watched,
        state=CollectionJob.State.DONE,
        steps=[{"step": "pod", "state": "done", "detail": MARKER, "at": "2024-01-01T00:00:00Z"}],
        notes=[f"note {MARKER}"],
        analysis=private,
        previous_analysis=shared,
    )
    key, plaintext = ApiKey.issue(alice, KEY_NAME)
    _, mallory_key = ApiKey.issue(mallory, "mallory bot")
    return World(
        alice=alice,
        mallory=mallory,
        team=team,
        invitation=invitation,
        private=private,
        shared=shared,
        public=public,
        mine=mine,
        cluster=cluster,
        job=job,
        watched=watched,
        key=key,
        key_plaintext=plaintext,
        mallory_key=mallory_key,
        kube_token=fake_apiserver.token,
    )


def snapshot(w: World) -> dict[str, Any]:
    """Everything about alice's objects that a stranger must not be able to change."""

    def analysis_state(a: Analysis) -> dict[str, Any]:
        a = Analysis.objects.get(pk=a.pk)
        return {
            "public": a.public,
            "teams": sorted(a.teams.values_list("pk", flat=True)),
            "connections": a.connections,
            "revision": a.revision,
            "state": a.state,
            "results": json.dumps(a.results, sort_keys=True, default=str),
            "owner": a.owner_id,
            "updated": a.updated.isoformat(),
        }

    cluster = Cluster.objects.filter(pk=w.cluster.pk).values().first()
    return {
        "private": analysis_state(w.private),
        "shared": analysis_state(w.shared),
        "public": analysis_state(w.public),
        "cluster": {k: v for k, v in (cluster or {}).items() if k != "checked"},
        "cluster_checked": (cluster or {}).get("checked"),
        "jobs": sorted(CollectionJob.objects.filter(owner=w.alice).values_list("pk", "state")),
        "jobs_on_alices_cluster": CollectionJob.objects.filter(cluster=w.cluster).count(),
        "watched": list(WatchedPod.objects.filter(owner=w.alice).values()),
        "watched_on_alices_cluster": WatchedPod.objects.filter(cluster=w.cluster).count(),
        "team_members": sorted(w.team.members.values_list("username", flat=True)),
        "alice_keys": list(ApiKey.objects.filter(user=w.alice).values("prefix", "revoked")),
        "alice_analyses": sorted(Analysis.objects.filter(owner=w.alice).values_list("slug", flat=True)),
    }


# --------------------------------------------------------------------------
# the URL map
# --------------------------------------------------------------------------


def all_routes() -> list[str]:
    """Every URL pattern of meshviz.urls as the route string ResolverMatch.route reports."""
    out: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                # ResolverMatch.route drops a regex pattern's leading ^ when it joins the parts
                part = str(p.pattern)
                out.append(prefix + (part[1:] if part.startswith("^") else part))

    walk(get_resolver().url_patterns, "")
    return out
