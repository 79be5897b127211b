"""Who is who in the pod for a story: addresses, the proxy's and the application's identities, and their sockets."""

from __future__ import annotations

from dataclasses import dataclass

from meshviz.engine.core.defaults import (
    DEFAULT_APP_GID,
    DEFAULT_APP_UID,
    DEFAULT_INBOUND_PORT,
    DEFAULT_OUTBOUND_PORT,
    DEFAULT_POD_IFACE,
    DEFAULT_TPROXY_MARK,
    DEFAULT_TPROXY_TABLE,
)
from meshviz.engine.core.model import Family, IPAddress, Socket, SocketRole
from meshviz.engine.envoy.model import EnvoyConfig, Listener
from meshviz.engine.evidence.profile import PodProfile
from meshviz.engine.routing.flow import Flow
from meshviz.engine.routing.output import route_output
from meshviz.engine.sim.snapshot import Snapshot


@dataclass(frozen=True)
class PodContext:
    """Who is who in the pod (built from the evidence's PodProfile, see meshviz.engine.evidence.profile)."""

    pod_ip: IPAddress
    proxy_uid: int
    proxy_gid: int
    proxy_net_admin: bool
    app_uid: int = DEFAULT_APP_UID
    app_gid: int = DEFAULT_APP_GID
    app_ports: tuple[int, ...] = ()
    client_tls: bool = False  # the client speaks (m)TLS to the pod (a meshed client's sidecar does)
    pod_iface: str = DEFAULT_POD_IFACE
    pod_ips: tuple[IPAddress, ...] = ()  # every address of the pod (dual stack); pod_ip when empty
    tproxy_mark: int = DEFAULT_TPROXY_MARK
    tproxy_table: int = DEFAULT_TPROXY_TABLE
    mode: str = "REDIRECT"
    outbound_port: int = DEFAULT_OUTBOUND_PORT  # Envoy's capture ports, as the rules redirect to them
    inbound_port: int = DEFAULT_INBOUND_PORT

    @classmethod
    def of(cls, profile: PodProfile, *, client_tls: bool = False) -> PodContext:
        assert profile.pod_ip is not None
        return cls(
            pod_ip=profile.pod_ip,
            proxy_uid=profile.proxy_uid,
            proxy_gid=profile.proxy_gid,
            proxy_net_admin=profile.proxy_net_admin,
            app_uid=profile.app_uid,
            app_gid=profile.app_gid,
            app_ports=profile.app_ports,
            client_tls=client_tls,
            pod_iface=profile.pod_iface,
            pod_ips=profile.pod_ips,
            tproxy_mark=profile.tproxy_mark,
            tproxy_table=profile.tproxy_table,
            mode=profile.mode,
            outbound_port=profile.outbound_port,
            inbound_port=profile.inbound_port,
        )

    def pod_ip_for(self, addr: IPAddress) -> IPAddress | None:
        """The pod's address of `addr`'s family."""
        for a in self.pod_ips or (self.pod_ip,):
            if a.version == addr.version:
                return a
        return None

    def is_local(self, addr: IPAddress) -> bool:
        return addr.is_loopback or addr in (self.pod_ips or (self.pod_ip,))


def ingress_interface(snapshot: Snapshot, ctx: PodContext, client: IPAddress) -> tuple[str, str | None]:
    """The interface a client's packets arrive on: the one the pod's routes send its replies to the client out of
    (routing is symmetric in a pod); the pod's own interface when the routes do not say."""
    d = route_output(snapshot, Flow(dst=client))
    if d.ok and d.dev and not d.local and d.dev != "lo":
        return d.dev, None
    return ctx.pod_iface, (
        f"the routes give no way back to {client}: assuming its packets arrive on the pod's interface {ctx.pod_iface}"
    )


# --------------------------------------------------------------------------
# Sockets: Envoy's listeners and the application
# --------------------------------------------------------------------------


def envoy_sockets(
    envoy: EnvoyConfig | None,
    ctx: PodContext,
    tproxy: bool,
    ports: tuple[int, int] = (DEFAULT_OUTBOUND_PORT, DEFAULT_INBOUND_PORT),
) -> tuple[list[Socket], list[str]]:
    """Envoy's listening sockets: the dump's active listeners, or (no dump) Istio's two capture listeners on the
    ports the rules redirect to (`ports` = outbound, inbound)."""
    notes: list[str] = []
    out: list[Socket] = []
    if envoy is None:
        notes.append(
            f"no Envoy config given: assuming Istio's standard sidecar listeners on {ports[0]} (outbound) and "
            f"{ports[1]} (inbound){', transparent (TPROXY)' if tproxy else ''}"
        )
        families = sorted({a.version for a in (ctx.pod_ips or (ctx.pod_ip,))})
        for port, role in ((ports[0], "virtualOutbound"), (ports[1], "virtualInbound")):
            for v in families:
                out.append(
                    Socket(
                        protocol="tcp",
                        local_port=port,
                        transparent=tproxy,
                        uid=ctx.proxy_uid,
                        gid=ctx.proxy_gid,
                        name=f"envoy listener {role}",
                        role=SocketRole.ENVOY_LISTENER,
                        family=Family.IPV6 if v == 6 else Family.IPV4,
                    )
                )
        return out, notes
    for lst in envoy.listeners:
        if lst.state != "active" or not lst.bind_to_port:
            continue
        # One socket per address (a dual-stack listener has `additional_addresses`); `::` with ipv4_compat
        # takes IPv4 connections too.
        for a in lst.addresses:
            ip = a.ip
            if ip is None or a.port is None:
                continue
            fams = [Family.of(ip)] + ([Family.IPV4] if ip.version == 6 and ip.is_unspecified and a.ipv4_compat else [])
            for fam in fams:
                out.append(
                    Socket(
                        protocol="tcp",
                        local_port=a.port,
                        local_addr=None if ip.is_unspecified else ip,
                        transparent=bool(lst.transparent),
                        uid=ctx.proxy_uid,
                        gid=ctx.proxy_gid,
                        name=f"envoy listener {lst.name}",
                        role=SocketRole.ENVOY_LISTENER,
                        family=fam,
                    )
                )
    return out, notes


def app_sockets(
    ctx: PodContext, ports: tuple[int, ...], taken: set[int], *, assumed: tuple[int, ...] = ()
) -> tuple[list[Socket], list[str]]:
    """The application's listeners: one per port that Envoy does not already listen on, on every address of
    the pod (a wildcard socket; dual stack when the pod has an IPv6 address).  `assumed` ports are not in the
    evidence: each is stated as an assumption."""
    families = sorted({a.version for a in (ctx.pod_ips or (ctx.pod_ip,))})
    out: list[Socket] = []
    notes: list[str] = []
    for p in sorted(set(ports) | set(assumed)):
        if p in taken:
            continue
        for v in families:
            out.append(
                Socket(
                    protocol="tcp",
                    local_port=p,
                    uid=ctx.app_uid,
                    gid=ctx.app_gid,
                    name=f"application :{p}",
                    role=SocketRole.APPLICATION,
                    family=Family.IPV6 if v == 6 else Family.IPV4,
                )
            )
        if p in assumed and p not in ports:
            notes.append(
                f"assuming the application listens on port {p} (the evidence names no application port for it)"
            )
    return out, notes


def _listener_of(envoy: EnvoyConfig | None, sock_name: str | None) -> Listener | None:
    if envoy is None or not sock_name or not sock_name.startswith("envoy listener "):
        return None
    return envoy.listener(sock_name[len("envoy listener ") :])


def _is_envoy(role: SocketRole | None) -> bool:
    return role is SocketRole.ENVOY_LISTENER
