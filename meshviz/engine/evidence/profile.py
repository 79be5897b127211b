"""The pod profile: who is who in the pod, derived once from the evidence.

Real pods differ from the textbook one: the pod's interface is not always `eth0` (VMs: `ens4`, Multus: `net1`,
Docker: `veth...`), the sidecar's uid is not always 1337 (OpenShift assigns one), the TPROXY mark and route
table are settings.  Every fact the story, the comparison, the fix and the explorer need about the pod is read
here from the evidence: the interfaces and addresses from the routes (and `ip addr` when given), the interception
mode, Envoy's capture ports and the TPROXY mark from the rules, the policy route's table from `ip rule`, the
sidecar's identity from the rules' owner exemptions, the application's ports from the Envoy config.  A value the
evidence does not give falls back to a named default below, and the fallback is said in `assumptions`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshviz.engine.core.model import Family, IPAddress
from meshviz.engine.netfilter.model import Rule, Ruleset
from meshviz.engine.netfilter.render import rule_text
from meshviz.engine.nftables import profile as nft
from meshviz.engine.routing.model import RuleAction
from meshviz.engine.sim.snapshot import Snapshot

if TYPE_CHECKING:
    from meshviz.engine.envoy.model import EnvoyConfig

from meshviz.engine.core.defaults import (
    DEFAULT_APP_GID,
    DEFAULT_APP_UID,
    DEFAULT_INBOUND_PORT,
    DEFAULT_OUTBOUND_PORT,
    DEFAULT_POD_IFACE,
    DEFAULT_PROXY_GID,
    DEFAULT_PROXY_UID,
    DEFAULT_TPROXY_MARK,
    DEFAULT_TPROXY_TABLE,
    ISTIO_PORTS,
)


@dataclass(frozen=True)
class PodProfile:
    pod_ips: tuple[IPAddress, ...]  # the pod's own addresses, the given one first
    pod_iface: str  # the interface that holds the pod IP
    mode: str  # REDIRECT | TPROXY | NONE (no interception rules)
    proxy_uid: int
    proxy_gid: int
    proxy_net_admin: bool
    tproxy_mark: int
    tproxy_mask: int
    tproxy_table: int
    inbound_port: int
    outbound_port: int
    app_ports: tuple[int, ...]
    app_uid: int
    app_gid: int
    facts: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()

    @property
    def pod_ip(self) -> IPAddress | None:
        return self.pod_ips[0] if self.pod_ips else None

    def pod_ip_for(self, family: Family) -> IPAddress | None:
        return next((a for a in self.pod_ips if Family.of(a) == family), None)

    def is_pod_address(self, addr: IPAddress) -> bool:
        return addr in self.pod_ips

    def to_dict(self) -> dict[str, Any]:
        return {
            "pod_ips": [str(a) for a in self.pod_ips],
            "pod_iface": self.pod_iface,
            "mode": self.mode,
            "proxy_uid": self.proxy_uid,
            "proxy_gid": self.proxy_gid,
            "proxy_net_admin": self.proxy_net_admin,
            "tproxy_mark": self.tproxy_mark,
            "tproxy_mask": self.tproxy_mask,
            "tproxy_table": self.tproxy_table,
            "inbound_port": self.inbound_port,
            "outbound_port": self.outbound_port,
            "app_ports": list(self.app_ports),
            "app_uid": self.app_uid,
            "app_gid": self.app_gid,
            "facts": list(self.facts),
            "assumptions": list(self.assumptions),
        }


# --------------------------------------------------------------------------
# Reading the rules
# --------------------------------------------------------------------------


def _rules(
    rulesets: Iterable[Ruleset], table: str | None = None, chains: Collection[str] | None = None
) -> Iterable[tuple[str, str, Rule]]:
    """Every rule (of `table`, of the `chains` named), in order.  Naming the chains matters on a node-sized ruleset:
    a chain's rules are built when first read (a fast-parsed ruleset), so the 30,000 chains of kube-proxy are not
    built to find Istio's few."""
    for rs in rulesets:
        for t in rs.tables:
            if table is not None and t.name != table:
                continue
            for c in t.chains:
                if chains is not None and c.name not in chains:
                    continue
                for r in c.rules:
                    yield t.name, c.name, r


def _target_is(rule: Rule, name: str) -> bool:
    return rule.target is not None and rule.target.name == name


def _opt(rule: Rule, *names: str) -> str | None:
    t = rule.target
    if t is None:
        return None
    for n in names:
        o = t.option(n)
        if o is not None and o.values:
            return o.values[0]
    return None


def _value_mask(text: str) -> tuple[int, int] | None:
    value, _, mask = text.partition("/")
    try:
        return int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF
    except ValueError:
        return None


def _owner_ids(rule: Rule, option: str) -> list[int]:
    out: list[int] = []
    for m in rule.matches:
        if m.module != "owner":
            continue
        for o in m.options:
            if o.name == option and not o.negated and o.values and o.values[0].isdigit():
                out.append(int(o.values[0]))
    return out


def interception_mode(snapshot: Snapshot) -> str:
    """TPROXY when a TPROXY rule exists, REDIRECT when a REDIRECT rule exists, otherwise NONE (the rules capture
    nothing).  The one place the mode is read from the rules."""
    from_nft = nft.interception_mode(snapshot.nftables)
    # TPROXY is a mangle target and REDIRECT a nat one (iptables-restore refuses them elsewhere, and so does the
    # parser): mangle is read for TPROXY first, then nat - Istio's chains before the others, so that a REDIRECT pod's
    # answer does not need kube-proxy's thousands of chains built.
    for _t, _c, r in _rules(snapshot.rulesets, "mangle"):
        if _target_is(r, "TPROXY"):
            return "TPROXY"
    mode = "NONE"
    for rs in snapshot.rulesets:
        nat = rs.table("nat")
        if nat is None:
            continue
        for c in sorted(nat.chains, key=lambda c: not c.name.startswith("ISTIO")):
            if any(_target_is(r, "REDIRECT") for r in c.rules):
                mode = "REDIRECT"
                break
        if mode == "REDIRECT":
            break
    return from_nft if from_nft == "TPROXY" or mode == "NONE" else mode


def _capture_port(snapshot: Snapshot, mode: str) -> int | None:
    """Envoy's inbound capture port: TPROXY's --on-port, or REDIRECT's --to-ports in Istio's inbound chain."""
    readings = (
        _rules(snapshot.rulesets, "mangle")
        if mode == "TPROXY"
        else _rules(snapshot.rulesets, "nat", ("ISTIO_IN_REDIRECT",))
        if mode == "REDIRECT"
        else ()
    )
    for t, c, r in readings:
        if mode == "TPROXY" and _target_is(r, "TPROXY"):
            p = _opt(r, "on-port")
            if p and p.isdigit():
                return int(p)
        if mode == "REDIRECT" and t == "nat" and c == "ISTIO_IN_REDIRECT" and _target_is(r, "REDIRECT"):
            p = _opt(r, "to-ports", "to-port")
            if p:
                return int(p.split("-")[0])
    return nft.capture_port(snapshot.nftables, mode)


def _outbound_port(snapshot: Snapshot) -> int | None:
    for t, c, r in _rules(snapshot.rulesets, "nat", ("ISTIO_REDIRECT",)):
        if t == "nat" and c == "ISTIO_REDIRECT" and _target_is(r, "REDIRECT"):
            p = _opt(r, "to-ports", "to-port")
            if p:
                return int(p.split("-")[0])
    return nft.outbound_port(snapshot.nftables)


def tproxy_mark_of(snapshot: Snapshot) -> tuple[int, int, str] | None:
    for _t, c, r in _rules(snapshot.rulesets, "mangle"):
        if _target_is(r, "TPROXY"):
            vm = _value_mask(_opt(r, "tproxy-mark", "on-mark") or "")
            if vm:
                return vm[0], vm[1], f"mangle/{c}: {rule_text(r).strip()}"
    for _t, c, r in _rules(snapshot.rulesets, "mangle"):
        if c == "ISTIO_DIVERT" and _target_is(r, "MARK"):
            vm = _value_mask(_opt(r, "set-xmark", "set-mark") or "")
            if vm:
                return vm[0], 0xFFFFFFFF, f"mangle/{c}: {rule_text(r).strip()}"
    return nft.tproxy_mark(snapshot.nftables)


def _exempt_ids(snapshot: Snapshot, option: str) -> list[int]:
    """The uids/gids whose connections the nat OUTPUT rules exempt from capture (`-m owner --uid-owner X -j RETURN`
    without an interface condition), Istio's way of letting the sidecar's own traffic out."""
    ids: list[int] = []
    for _t, c, r in _rules(snapshot.rulesets, "nat", ("ISTIO_OUTPUT", "OUTPUT")):
        if c in ("ISTIO_OUTPUT", "OUTPUT") and _target_is(r, "RETURN") and r.out_iface is None:
            ids += _owner_ids(r, option)
    ids += nft.exempt_ids(snapshot.nftables, "meta skuid" if option == "uid-owner" else "meta skgid")
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------
# Deriving the profile
# --------------------------------------------------------------------------


def pod_interface(snapshot: Snapshot, pod_ip: IPAddress | None) -> str | None:
    """The interface holding the pod IP, as the evidence shows it (None when it does not)."""
    if pod_ip is None:
        return None
    for i in snapshot.interfaces:
        if pod_ip in i.addresses and not i.loopback:
            return i.name
    return None


def pod_ip_from_evidence(snapshot: Snapshot, envoy: EnvoyConfig | None) -> tuple[IPAddress | None, str]:
    """The pod IP when the caller did not give one: Envoy's node id (`sidecar~IP~pod.ns~...`), or the one global
    address the interfaces hold."""
    if envoy is not None and envoy.node_id:
        parts = envoy.node_id.split("~")
        if len(parts) >= 2:
            try:
                return ipaddress.ip_address(parts[1]), f"the pod IP {parts[1]} is from Envoy's node id {envoy.node_id}"
            except ValueError:
                pass
    found = [
        a
        for i in snapshot.interfaces
        if not i.loopback
        for a in i.addresses
        if not a.is_loopback and not a.is_link_local and not a.is_multicast
    ]
    v4 = [a for a in found if a.version == 4]
    pick = v4 if v4 else found
    if len(pick) == 1:
        return pick[0], f"the pod IP {pick[0]} is the only address the routes show"
    return None, ""


def _app_ports_from_envoy(envoy: EnvoyConfig | None) -> list[int]:
    if envoy is None:
        return []
    ports: list[int] = []
    for c in envoy.clusters:
        parts = c.name.split("|")
        if len(parts) == 4 and parts[0] == "inbound" and parts[1].isdigit():
            ports.append(int(parts[1]))
    return sorted(p for p in dict.fromkeys(ports) if p not in ISTIO_PORTS and p > 0)


def derive_profile(
    snapshot: Snapshot,
    envoy: EnvoyConfig | None,
    *,
    pod_ip: IPAddress | None,
    proxy_uid: int | None = None,
    proxy_gid: int | None = None,
    proxy_net_admin: bool | None = None,
    app_ports: tuple[int, ...] = (),
    app_uid: int | None = None,
    app_gid: int | None = None,
) -> PodProfile:
    facts: list[str] = []
    assumptions: list[str] = []

    # Addresses and interface
    if pod_ip is None:
        pod_ip, how = pod_ip_from_evidence(snapshot, envoy)
        if pod_ip is not None:
            facts.append(how)
    iface = pod_interface(snapshot, pod_ip)
    if iface is None:
        iface = DEFAULT_POD_IFACE
        assumptions.append(f"the evidence does not show which interface holds the pod IP: assuming {iface}")
    else:
        facts.append(f"the pod IP {pod_ip} is on {iface}")
    ips: list[IPAddress] = [pod_ip] if pod_ip is not None else []
    holder = snapshot.interface(iface)
    for a in holder.addresses if holder else ():
        if (
            a not in ips
            and not a.is_link_local
            and not a.is_loopback
            and a.version != (pod_ip.version if pod_ip else 0)
        ):
            ips.append(a)
            facts.append(f"the pod's {'IPv6' if a.version == 6 else 'IPv4'} address is {a} (dual stack)")
            break

    # Interception mode
    mode = interception_mode(snapshot)
    if mode == "NONE" and envoy is not None and envoy.interception_mode in ("REDIRECT", "TPROXY"):
        facts.append(f"the rules intercept nothing; Envoy's node metadata says {envoy.interception_mode}")
    tproxy = mode == "TPROXY" or (envoy is not None and envoy.interception_mode == "TPROXY")

    # The sidecar's identity
    uids, gids = _exempt_ids(snapshot, "uid-owner"), _exempt_ids(snapshot, "gid-owner")
    if proxy_uid is None:
        if tproxy:
            proxy_uid = 0
            assumptions.append("assuming the sidecar runs as uid 0 (Istio runs a TPROXY sidecar as root)")
        elif uids:
            proxy_uid = uids[0]
            facts.append(f"the sidecar runs as uid {proxy_uid}: the rules exempt its connections from capture")
        else:
            proxy_uid = DEFAULT_PROXY_UID
            assumptions.append(
                f"assuming the sidecar runs as uid {proxy_uid} (Istio's default; the rules exempt no uid)"
            )
    if proxy_gid is None:
        if gids:
            proxy_gid = gids[0]
            facts.append(f"the sidecar runs as gid {proxy_gid}: the rules exempt its connections from capture")
        else:
            proxy_gid = DEFAULT_PROXY_GID
            assumptions.append(f"assuming the sidecar runs as gid {proxy_gid} (Istio's default)")
    net_admin = proxy_net_admin if proxy_net_admin is not None else (proxy_uid == 0 or tproxy)

    # TPROXY mark and policy route table
    tm = tproxy_mark_of(snapshot)
    if tm is not None:
        mark, mask, ref = tm
        facts.append(f"the TPROXY mark is {mark:#x} ({ref})")
    else:
        mark, mask = DEFAULT_TPROXY_MARK, 0xFFFFFFFF
        if tproxy:
            assumptions.append(f"the rules set no TPROXY mark: assuming Istio's {mark}")
    table = None
    for pr in snapshot.routing.rules:
        if pr.fwmark is not None and pr.action == RuleAction.LOOKUP and (pr.fwmark & pr.fwmask) == (mark & pr.fwmask):
            table = pr.table
            facts.append(f"marked replies are routed by table {table} (ip rule {pr.priority})")
            break
    if table is None:
        table = DEFAULT_TPROXY_TABLE
        if tproxy:
            assumptions.append(f"no ip rule routes mark {mark:#x}: a repair would use Istio's table {table}")

    # Envoy's ports
    inbound = _capture_port(snapshot, mode)
    if inbound is None:
        inbound = DEFAULT_INBOUND_PORT
    outbound = _outbound_port(snapshot) or DEFAULT_OUTBOUND_PORT

    # The application
    ports = tuple(dict.fromkeys(app_ports))
    if ports:
        facts.append(f"the application listens on {', '.join(map(str, ports))} (given)")
    else:
        found = _app_ports_from_envoy(envoy)
        if found:
            ports = tuple(found)
            facts.append(f"the application listens on {', '.join(map(str, ports))} (Envoy's inbound clusters)")
    if app_uid is None:
        app_uid = DEFAULT_APP_UID
    if app_gid is None:
        app_gid = DEFAULT_APP_GID

    return PodProfile(
        pod_ips=tuple(ips),
        pod_iface=iface,
        mode=mode,
        proxy_uid=proxy_uid,
        proxy_gid=proxy_gid,
        proxy_net_admin=net_admin,
        tproxy_mark=mark,
        tproxy_mask=mask,
        tproxy_table=table,
        inbound_port=inbound,
        outbound_port=outbound,
        app_ports=ports,
        app_uid=app_uid,
        app_gid=app_gid,
        facts=tuple(facts),
        assumptions=tuple(assumptions),
    )
