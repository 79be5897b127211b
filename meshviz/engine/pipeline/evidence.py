"""One pod's evidence as the user gave it (texts), plus who is who in the pod.

The fix and the comparison patch evidence and re-run the story on it, so the
patched evidence is always something a user could have uploaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from meshviz.engine.core.errors import EngineInputError
from meshviz.engine.evidence.profile import PodProfile
from meshviz.engine.story.model import Story

if TYPE_CHECKING:
    from meshviz.engine.envoy.model import EnvoyConfig
    from meshviz.engine.evidence.podspec import PodIdentity
    from meshviz.engine.pipeline.pod import Pod
    from meshviz.engine.sim.snapshot import Snapshot


@dataclass(frozen=True)
class Evidence:
    iptables: str
    pod_ip: str | None  # None: taken from the evidence (Envoy's node id, the routes' only address)
    ip_rule: str | None = None
    ip_route: str | None = None
    sysctl: str | None = None
    envoy: str | None = None
    ip6tables: str | None = None
    ip6_rule: str | None = None
    ip6_route: str | None = None
    addr: str | None = None  # `ip -o addr` output
    nftables: str | None = None  # `nft list ruleset` output
    proxy_uid: int | None = None
    proxy_gid: int | None = None
    proxy_net_admin: bool | None = None
    app_ports: tuple[int, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    pod_name: str | None = None
    namespace: str | None = None
    workload: str | None = None  # e.g. "deployment/reviews-v1", for kubectl patches


def story_for(ev: Evidence, *, client: str, port: int, client_tls: bool = False) -> Story:
    """The inbound story of `client` -> pod:`port` on this evidence (raises on input errors); `client_tls`: the
    client speaks mTLS (a meshed client)."""
    return _story(ev, direction="inbound", client=client, port=port, client_tls=client_tls)


def outbound_story_for(ev: Evidence, *, dst: str, app_uid: int, app_gid: int) -> Story:
    """The story of a connection the application (uid/gid) opens to `dst`."""
    return _story(ev, direction="outbound", dst=dst, app_uid=app_uid, app_gid=app_gid)


def udp_story_for(ev: Evidence, *, dst: str, app_uid: int, app_gid: int, dns_proxy: bool = True) -> Story:
    """The story of a UDP datagram (a DNS query) the application (uid/gid) sends to `dst`, and of its answer."""
    return _story(ev, direction="udp", dst=dst, app_uid=app_uid, app_gid=app_gid, dns_proxy=dns_proxy)


def _pod_arguments(ev: Evidence) -> dict[str, Any]:
    """The evidence as the facade's keyword arguments (`load_pod`, `run_story`)."""
    return {
        "iptables": ev.iptables,
        "ip_rule": ev.ip_rule,
        "ip_route": ev.ip_route,
        "sysctl": ev.sysctl,
        "envoy": ev.envoy,
        "ip6tables": ev.ip6tables,
        "ip6_rule": ev.ip6_rule,
        "ip6_route": ev.ip6_route,
        "addr": ev.addr,
        "nftables": ev.nftables,
        "pod_ip": ev.pod_ip,
        "proxy_uid": ev.proxy_uid,
        "proxy_gid": ev.proxy_gid,
        "proxy_net_admin": ev.proxy_net_admin,
        "app_ports": ev.app_ports,
    }


def _story(ev: Evidence, **connection: Any) -> Story:
    from meshviz.engine.pipeline.pod import run_story

    r = run_story(**_pod_arguments(ev), **connection)
    if r.errors:
        raise EngineInputError(list(r.errors))
    assert r.story is not None
    return r.story


@lru_cache(maxsize=32)
def pod_of(ev: Evidence) -> Pod:
    """The evidence parsed once (cached by content): snapshot, Envoy config and the pod's profile."""
    from meshviz.engine.pipeline.pod import load_pod

    return load_pod(**_pod_arguments(ev))


def profile_of(ev: Evidence) -> PodProfile:
    """The pod's profile (meshviz.engine.evidence.profile); raises EngineInputError when the evidence does not parse."""
    pod = pod_of(ev)
    if pod.errors:
        raise EngineInputError(list(pod.errors))
    if pod.profile is None:
        raise ValueError("the pod IP is not in the evidence: give it")
    return pod.profile


def identity_of(ev: Evidence) -> PodIdentity:
    """Who the pod is according to the Envoy dump's node metadata (empty when there is no dump)."""
    from meshviz.engine.evidence.podspec import PodIdentity, identity_from_node

    if not ev.envoy:
        return PodIdentity()
    config = pod_of(ev).envoy
    if config is None:
        return PodIdentity()
    return identity_from_node(dict(config.node_metadata), config.node_id)


def with_identity(ev: Evidence) -> Evidence:
    """`ev` with what the user did not give filled in from the dump's node metadata: the pod's name, namespace,
    workload (for `kubectl -n NS patch deployment/NAME`), labels (an EnvoyFilter's workload selector) and the
    application's ports (INCLUDE_INBOUND_PORTS / POD_PORTS)."""
    ident = identity_of(ev)
    return replace(
        ev,
        pod_name=ev.pod_name or ident.name or None,
        namespace=ev.namespace or ident.namespace or None,
        workload=ev.workload or ident.workload or None,
        labels=ev.labels or tuple(sorted(ident.labels.items())),
        app_ports=ev.app_ports or ident.app_ports,
    )


@dataclass(frozen=True)
class SimulatedPod:
    """The evidence as the explorer simulates single packets on it: the snapshot with the sockets the story
    assumes (Envoy's listeners and the application's), the sidecar's identity and the assumptions made."""

    evidence: Evidence
    snapshot: Snapshot
    envoy: EnvoyConfig | None
    profile: PodProfile
    proxy_uid: int
    proxy_gid: int
    mode: str
    socket_notes: tuple[str, ...] = ()


@lru_cache(maxsize=16)
def simulated_pod(ev: Evidence, default_app_port: int) -> SimulatedPod:
    """Parse `ev` once (cached by content) and add the sockets the story would assume."""
    from meshviz.engine.story.context import PodContext, app_sockets, envoy_sockets

    pod = pod_of(ev)
    profile = profile_of(ev)
    ctx = PodContext.of(profile)
    tproxy = profile.mode == "TPROXY"
    e_socks, e_notes = envoy_sockets(pod.envoy, ctx, tproxy, (ctx.outbound_port, ctx.inbound_port))
    given = profile.app_ports
    a_socks, a_notes = app_sockets(
        ctx, given, {s.local_port for s in e_socks}, assumed=() if given else (default_app_port,)
    )
    snapshot = replace(pod.snapshot, sockets=tuple(e_socks + a_socks))
    notes = tuple(profile.assumptions) + tuple(e_notes) + tuple(a_notes)
    return SimulatedPod(ev, snapshot, pod.envoy, profile, profile.proxy_uid, profile.proxy_gid, profile.mode, notes)


def connection_story(ev: Evidence, connection: Mapping[str, Any]) -> Story:
    """The story of one connection in the stored shape (`Analysis.connections`).

    `{"direction": "inbound", "client": "IP:PORT", "port": N}`,
    `{"direction": "outbound", "dst": "IP:PORT", "app_uid": N, "app_gid": N}` or
    `{"direction": "udp", "dst": "IP:PORT", "app_uid": N, "app_gid": N[, "dns_proxy": false]}` (a datagram and its
    answer).  Raises ValueError for a connection of another shape, EngineInputError when the evidence does not
    parse.
    """
    direction = connection.get("direction")
    try:
        if direction == "inbound":
            return story_for(ev, client=str(connection["client"]), port=int(connection["port"]))
        if direction == "outbound":
            return outbound_story_for(
                ev,
                dst=str(connection["dst"]),
                app_uid=int(connection["app_uid"]),
                app_gid=int(connection["app_gid"]),
            )
        if direction == "udp":
            return udp_story_for(
                ev,
                dst=str(connection["dst"]),
                app_uid=int(connection["app_uid"]),
                app_gid=int(connection["app_gid"]),
                dns_proxy=bool(connection.get("dns_proxy", True)),
            )
    except KeyError as e:
        raise ValueError(f"{direction} connection without {e.args[0]!r}: {dict(connection)!r}") from e
    raise ValueError(f"unknown connection direction {direction!r} (inbound, outbound or udp): {dict(connection)!r}")


def verdict_line(story: Story) -> str:
    """The story's one-line verdict (its summary up to the explanation) - with the real cause when the evidence
    itself names one (`evidence_cause`: a listener Envoy rejected, evidence that is not a sidecar's, a dump for
    the other mode; meshviz.engine.pipeline.checks.with_evidence_findings)."""
    head = story.summary.split(" - ")[0]
    cause = story.facts.get("evidence_cause")
    return f"{head} - {cause}" if cause else head
