"""The comparison and the fix for pods whose interception Istio programs in native nftables.

A pod's capture is in nft when its `nft list ruleset` has Istio's sidecar tables (`inet istio-proxy-nat`,
`istio-proxy-mangle`, `istio-proxy-raw`) and its iptables rules have no Istio chain (`backend_of`).  Such a pod
is switched to the other interception mode by Istio's nftables generator (`istio.nft_generator`) for the settings
its nft rules show (`settings_from_nft`), and repaired with the nft forms of the TPROXY rules
(`istio.nft_commands`).  Both are applied to the pod's nft evidence as the user would apply them, an `nft -f`
fragment appended to what `nft list ruleset` printed, and re-simulated from there:

    add table inet istio-proxy-nat          # (a no-op when it exists: the delete below never fails)
    delete table inet istio-proxy-nat       # Istio's tables only; kube-proxy's and every other table stay
    ...
    add table inet istio-proxy-mangle       # Istio's generator's script for the new mode
    ...

iptables rules (a mixed pod: kube-proxy in iptables-nft beside Istio's nft tables) are left as they are.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import replace

from meshviz.engine.core.model import Family
from meshviz.engine.fix.result import NFT_FRAGMENT, Artifact, Repair
from meshviz.engine.istio.nft_commands import (
    NftRepair,
    connmark_restore,
    connmark_save,
    inbound_mark_return,
    nft_fragment,
)
from meshviz.engine.istio.nft_generator import (
    ISTIO_DROP,
    ISTIO_IN_REDIRECT,
    ISTIO_INBOUND,
    ISTIO_OUTPUT,
    ISTIO_OUTPUT_DNS,
    ISTIO_REDIRECT,
    ISTIO_TPROXY,
    MANGLE,
    NAT,
    OUTPUT,
    PREROUTING,
    RAW,
    GeneratedNftables,
    generate_nftables,
)
from meshviz.engine.istio.settings import WILDCARD, CaptureSettings, Cidr, InterceptionMode
from meshviz.engine.nftables import profile as nft_profile
from meshviz.engine.nftables.model import AnonSet, Match, NftRule, NftRuleset, Selector, SetStmt, Value, Verdict
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.nftables.write_listing import ruleset_listing, same_ruleset
from meshviz.engine.pipeline.evidence import Evidence, pod_of
from meshviz.engine.pipeline.parsecache import rules_once

__all__ = [
    "ISTIO_TABLES",
    "backend_of",
    "generate_for",
    "istio_nft_ruleset",
    "nft_firewall_repairs",
    "replacement_fragment",
    "settings_from_nft",
    "with_fragment",
]

#: Istio's sidecar tables: the only nft tables the comparison and the fix replace.
ISTIO_TABLES = (NAT, MANGLE, RAW)


def _iptables_has_istio(ev: Evidence) -> bool:
    texts = [(ev.iptables, None), (ev.ip6tables, Family.IPV6)]
    for text, fam in texts:
        if not text:
            continue
        parsed = rules_once(text, family=fam) if fam is not None else rules_once(text)
        if any(c.name.startswith("ISTIO_") for rs in parsed.rulesets for t in rs.tables for c in t.chains):
            return True
    return False


def istio_nft_ruleset(ev: Evidence) -> NftRuleset | None:
    """The pod's nft ruleset when Istio's sidecar capture is in it and not in iptables, else None."""
    if not ev.nftables or _iptables_has_istio(ev):
        return None
    rs = pod_of(ev).snapshot.nftables
    return rs if nft_profile.is_istio(rs) == "sidecar" else None


def backend_of(ev: Evidence) -> str:
    """`nftables` when the pod's Istio capture is native nftables, `iptables` otherwise: the backend the
    comparison's and the fix's rules are generated for."""
    return "nftables" if istio_nft_ruleset(ev) is not None else "iptables"


# --------------------------------------------------------------------------
# The settings behind a pod's nft rules
# --------------------------------------------------------------------------

_PORT_MATCHES = (Selector("meta l4proto"), Selector("tcp dport"))


def _ports(rule: NftRule) -> tuple[list[int], bool]:
    """The `tcp dport` ports a rule matches (== only) and whether it matches nothing but protocol and ports."""
    ports: list[int] = []
    simple = True
    for s in rule.statements:
        if not isinstance(s, Match):
            continue
        if s.left not in _PORT_MATCHES:
            simple = False
        elif s.left == Selector("tcp dport"):
            if s.op != "==":
                simple = False
            values = [e.key[0] for e in s.right.elements] if isinstance(s.right, AnonSet) else [s.right]
            ports += [int(v.text_) for v in values if isinstance(v, Value) and v.text_.isdigit()]
    return ports, simple


def _verdict(rule: NftRule) -> Verdict | None:
    return next((s for s in reversed(rule.statements) if isinstance(s, Verdict)), None)


def _matches(rule: NftRule) -> list[Match]:
    return [s for s in rule.statements if isinstance(s, Match)]


def _only(rule: NftRule, key: str) -> str | None:
    """The value of the rule's single `key == VALUE` match (None when it matches anything else too)."""
    ms = _matches(rule)
    if len(ms) == 1 and ms[0].left == Selector(key) and ms[0].op == "==" and isinstance(ms[0].right, Value):
        return ms[0].right.text_
    return None


def _chain_rules(rs: NftRuleset, table: str, chain: str) -> tuple[NftRule, ...]:
    t = rs.table("inet", table)
    c = t.chain(chain) if t else None
    return c.rules if c else ()


def _interfaces(rs: NftRuleset) -> dict[str, object]:
    """Excluded interfaces (`iifname X return` in nat prerouting and `oifname X return` in nat output) and
    KubeVirt interfaces (rerouted: `iifname X ... return|jump istio-redirect` in nat prerouting only, each
    inserted at the head, so listed last first)."""
    pre: list[str] = []
    virt: list[str] = []
    for r in _chain_rules(rs, NAT, PREROUTING):
        v = _verdict(r)
        iface = next((m.right.text_ for m in _matches(r) if m.left == Selector("meta iifname")
                      and m.op == "==" and isinstance(m.right, Value)), None)  # fmt: skip
        if v is None or iface is None:
            continue
        if v.kind == "return" and _only(r, "meta iifname") is not None:
            pre.append(iface)
        elif v.kind == "jump" and v.chain == ISTIO_REDIRECT:
            virt.append(iface)
    out = {
        _only(r, "meta oifname")
        for r in _chain_rules(rs, NAT, OUTPUT)
        if (v := _verdict(r)) is not None and v.kind == "return"
    }
    kw: dict[str, object] = {}
    excluded = [i for i in pre if i in out]
    virt = list(reversed([*virt, *(i for i in pre if i not in out)]))
    if excluded:
        kw["exclude_interfaces"] = tuple(dict.fromkeys(excluded))
    if virt:
        kw["reroute_virtual_interfaces"] = tuple(dict.fromkeys(virt))
    return kw


def _cidr(text: str) -> Cidr | None:
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def _outbound(rs: NftRuleset) -> dict[str, object]:
    """Outbound capture in nat istio-output: the loopback CIDR, excluded and included ranges and ports."""
    kw: dict[str, object] = {}
    seen_loopback = {4: False, 6: False}
    exclude: list[Cidr] = []
    include: list[Cidr] = []
    include_all = False
    ports_in: list[int] = []
    ports_out: list[int] = []
    for r in _chain_rules(rs, NAT, ISTIO_OUTPUT):
        v = _verdict(r)
        if v is None:
            continue
        redirect = v.kind == "jump" and v.chain == ISTIO_REDIRECT
        if not redirect and v.kind != "return":
            continue
        if redirect and not _matches(r):
            include_all = True
            continue
        for key in ("ip daddr", "ip6 daddr"):
            text = _only(r, key)
            cidr = _cidr(text) if text is not None else None
            if cidr is None:
                continue
            if redirect:
                include.append(cidr)
            elif not seen_loopback[cidr.version]:
                seen_loopback[cidr.version] = True  # Istio's first daddr return: "to localhost"
                if cidr.version == 4 and cidr != CaptureSettings().host_ipv4_loopback_cidr:
                    kw["host_ipv4_loopback_cidr"] = cidr
            else:
                exclude.append(cidr)
        for key in ("tcp dport", "udp dport"):
            text = _only(r, key)
            if text is not None and text.isdigit():
                (ports_in if redirect and key == "tcp dport" else ports_out).append(int(text))
    if include_all:
        kw["outbound_ip_ranges_include"] = WILDCARD
    elif include:
        kw["outbound_ip_ranges_include"] = tuple(dict.fromkeys(include))
    if exclude:
        kw["outbound_ip_ranges_exclude"] = tuple(dict.fromkeys(exclude))
    if ports_in:
        kw["outbound_ports_include"] = tuple(dict.fromkeys(ports_in))
    if ports_out:
        kw["outbound_ports_exclude"] = tuple(dict.fromkeys(ports_out))
    return kw


def _dns(rs: NftRuleset) -> dict[str, object]:
    """DNS capture: istio-output-dns chains (raw, nat), the servers the nat one redirects to 15053 for (or every
    port-53 packet: --capture-all-dns)."""
    raw = rs.table("inet", RAW)
    rules = _chain_rules(rs, NAT, ISTIO_OUTPUT_DNS)
    if not rules and (raw is None or raw.chain(ISTIO_OUTPUT_DNS) is None):
        return {}
    kw: dict[str, object] = {"redirect_dns": True}
    servers: dict[int, list[str]] = {4: [], 6: []}
    for r in rules:
        daddr = [m for m in _matches(r) if m.left in (Selector("ip daddr"), Selector("ip6 daddr"))]
        if not daddr:
            kw["capture_all_dns"] = True
            continue
        right = daddr[0].right
        cidr = _cidr(right.text_) if isinstance(right, Value) else None
        if cidr is not None:
            servers[cidr.version].append(str(cidr.ip))
    if servers[4]:
        kw["dns_servers_v4"] = tuple(dict.fromkeys(servers[4]))
    if servers[6]:
        kw["dns_servers_v6"] = tuple(dict.fromkeys(servers[6]))
    return kw


def _owner_groups(rs: NftRuleset) -> dict[str, object]:
    """The sidecar's gids (a `skgid X return` with its `skgid X jump istio-in-redirect` companion) apart from
    owner groups: excluded (`skgid G return` alone) or included (`skgid != A skgid != B return`)."""
    rules = _chain_rules(rs, NAT, ISTIO_OUTPUT)
    proxy = {
        m.right.text_
        for r in rules
        if (v := _verdict(r)) is not None and v.kind == "jump" and v.chain == ISTIO_IN_REDIRECT
        for m in _matches(r)
        if m.left == Selector("meta skgid") and m.op == "==" and isinstance(m.right, Value)
    }
    kw: dict[str, object] = {}
    excluded: list[str] = []
    for r in rules:
        v = _verdict(r)
        if v is None or v.kind != "return":
            continue
        ms = _matches(r)
        if (g := _only(r, "meta skgid")) is not None and g not in proxy:
            excluded.append(g)
        elif ms and all(m.left == Selector("meta skgid") and m.op == "!=" and isinstance(m.right, Value) for m in ms):
            kw["owner_groups_include"] = tuple(m.right.text_ for m in ms if isinstance(m.right, Value))
    if excluded:
        kw["owner_groups_exclude"] = tuple(dict.fromkeys(excluded))
    if proxy:
        kw["proxy_gids"] = tuple(g for g in dict.fromkeys(
            str(i) for i in nft_profile.exempt_ids(rs, "meta skgid")) if g in proxy)  # fmt: skip
    return kw


def settings_from_nft(rs: NftRuleset, notes: list[str]) -> CaptureSettings:
    """The istio-nftables settings behind a pod's Istio nft tables (what the comparison keeps constant): mode,
    Envoy's ports, the inbound ports captured or excluded, the excluded interfaces, the sidecar's uid/gid,
    outbound ranges and ports, the loopback CIDR, KubeVirt interfaces, `drop-invalid`, the TPROXY mark and whether
    IPv6 is programmed, DNS capture and owner groups."""
    base = CaptureSettings()
    kw: dict[str, object] = {}
    mode = nft_profile.interception_mode(rs)
    mangle = rs.table("inet", MANGLE)
    # Istio's mangle table saves the TPROXY mark even when no inbound port is captured (INBOUND_PORTS="").
    tproxy = mode == "TPROXY" or (mangle is not None and _saves_mark(NftRuleset((mangle,))))
    if tproxy:
        mode = "TPROXY"
    kw["interception_mode"] = InterceptionMode.TPROXY if tproxy else InterceptionMode.REDIRECT
    if (p := nft_profile.outbound_port(rs)) is not None:
        kw["proxy_port"] = p
    if (p := nft_profile.capture_port(rs, mode)) is not None:
        kw["inbound_capture_port"] = p
    table = rs.table("inet", MANGLE if tproxy else NAT)
    inbound = table.chain(ISTIO_INBOUND) if table else None
    if inbound is None:
        notes.append(f"the nft rules have no {ISTIO_INBOUND} chain: assuming no inbound capture")
    else:
        excluded: list[int] = []
        included: list[int] = []
        catch_all = False
        target = ISTIO_TPROXY if tproxy else ISTIO_IN_REDIRECT
        for rule in inbound.rules:
            v = _verdict(rule)
            ports, simple = _ports(rule)
            if v is None or not simple:
                continue
            if v.kind == "return" and ports:
                excluded += ports
            elif v.kind == "jump" and v.chain == target:
                if ports:
                    included += ports
                else:
                    catch_all = True
        excluded = [p for p in excluded if p != base.inbound_tunnel_port]
        if catch_all:
            kw["inbound_ports_include"] = "*"
            kw["inbound_ports_exclude"] = tuple(dict.fromkeys(excluded))
        elif included:
            kw["inbound_ports_include"] = tuple(dict.fromkeys(included))
    kw.update(_interfaces(rs))
    kw.update(_outbound(rs))
    kw.update(_dns(rs))
    if mangle is not None and mangle.chain(ISTIO_DROP) is not None:
        kw["drop_invalid"] = True
    uids = nft_profile.exempt_ids(rs, "meta skuid")
    gids = nft_profile.exempt_ids(rs, "meta skgid")
    if uids:
        kw["proxy_uids"] = tuple(str(u) for u in uids)
    if gids:
        kw["proxy_gids"] = tuple(str(g) for g in gids)
    kw.update(_owner_groups(rs))
    tm = nft_profile.tproxy_mark(rs)
    if tm is not None:
        kw["inbound_tproxy_mark"] = tm[0]
    istio = [r for name in ISTIO_TABLES if (t := rs.table("inet", name)) for c in t.chains for r in c.rules]
    if any(isinstance(s, Match) and isinstance(s.left, Selector) and s.left.key.startswith("ip6 ")
           for r in istio for s in r.statements):  # fmt: skip
        kw["enable_ipv6"] = True
    fields = {f.name for f in dataclasses.fields(CaptureSettings)}
    return replace(base, **{k: v for k, v in kw.items() if k in fields})  # type: ignore[arg-type]


def generate_for(settings: CaptureSettings) -> GeneratedNftables:
    """Istio's nftables generator for these settings; raises ValueError when nft would refuse its script."""
    g = generate_nftables(settings)
    if g.problems:
        raise ValueError(f"Istio's nftables generator gives a script nft refuses: {g.problems[0]}")
    return g


# --------------------------------------------------------------------------
# Applying nft to the evidence
# --------------------------------------------------------------------------


def replacement_fragment(script: str) -> str:
    """An `nft -f` fragment that replaces Istio's sidecar tables by `script` and keeps every other table:
    `add table` + `delete table` per Istio table (so the delete never fails), then the script."""
    drop = "".join(f"add table inet {t}\ndelete table inet {t}\n" for t in ISTIO_TABLES)
    return drop + script


def with_fragment(ev: Evidence, fragment: str) -> Evidence:
    """`ev` after `nft -f fragment` ran on the pod: the fragment appended to the listed ruleset (`nft -j`
    evidence is written as a listing first)."""
    return replace(ev, nftables=listed_text(ev).rstrip("\n") + "\n" + fragment)


def listed_text(ev: Evidence) -> str:
    """The pod's nft evidence as text `nft -f` reads: as given, or, for `nft -j` JSON, written as a listing
    (refused when the listing would not read back as the same ruleset)."""
    text = ev.nftables or ""
    if not text.lstrip().startswith(("{", "[")):
        return text
    parsed = pod_of(ev).snapshot.nftables
    if parsed is None:
        raise ValueError("the nft evidence does not parse")
    listing = ruleset_listing(parsed)
    back = parse_nftables(listing)
    if back.errors or not same_ruleset(back.ruleset, parsed):
        raise ValueError("the `nft -j` evidence cannot be written as a listing that reads back the same")
    return listing


# --------------------------------------------------------------------------
# The TPROXY repairs in nft
# --------------------------------------------------------------------------


def _saves_mark(rs: NftRuleset) -> bool:
    """`ct mark set meta mark` (CONNMARK --save-mark) somewhere in a prerouting base chain's rules."""
    return any(
        isinstance(s, SetStmt) and s.target == Selector("ct mark") and s.value == Selector("meta mark")
        for t in rs.tables
        for c in t.chains
        for r in c.rules
        for s in r.statements
    )


def _returns_mark(rs: NftRuleset, mark: int) -> bool:
    t = rs.table("inet", MANGLE)
    c = t.chain(ISTIO_INBOUND) if t else None
    for r in c.rules if c else ():
        v = _verdict(r)
        if v is None or v.kind != "return":
            continue
        for s in r.statements:
            if isinstance(s, Match) and s.left == Selector("meta mark") and s.op == "==" and isinstance(s.right, Value):
                try:
                    if int(s.right.text_, 0) == mark:
                        return True
                except ValueError:
                    continue
    return False


def _has_inbound_chain(rs: NftRuleset) -> bool:
    t = rs.table("inet", MANGLE)
    return t is not None and t.chain(ISTIO_INBOUND) is not None


def nft_repair(repair: NftRepair, why: str) -> Repair:
    """A fix repair made of one nft rule: applied to the evidence as its `nft -f` fragment; shown as the
    `nft add rule ...` command and the fragment."""
    fragment = nft_fragment([repair])
    return Repair(
        repair.key,
        repair.title,
        why,
        lambda ev: with_fragment(ev, fragment),
        (
            Artifact("nft", repair.title, repair.command()),
            Artifact(NFT_FRAGMENT, f"{repair.title} (nft -f fragment)", fragment),
        ),
    )


def nft_firewall_repairs(rs: NftRuleset, mark: int, table: int) -> list[Repair]:
    """The TPROXY firewall repairs an nft pod lacks: the mark saved on the connection, restored on the
    application's replies, and Envoy's own marked connection kept out of istio-inbound."""
    out: list[Repair] = []
    if not _saves_mark(rs):
        out.append(
            nft_repair(
                connmark_save(mark),
                f"Envoy's upstream SYN carries mark {mark}; saving it on the connection (`ct mark set mark` in "
                "istio-proxy-mangle's prerouting, after it loops back on lo) is what lets the application's replies "
                "get the mark back.",
            )
        )
    if not nft_profile.restores_ct_mark(rs):
        out.append(
            nft_repair(
                connmark_restore(mark),
                "The application's sockets have no mark: restoring the connection's mark in istio-proxy-mangle's "
                f"output (`meta mark set ct mark`) makes the kernel re-route its replies with mark {mark}, into "
                f"table {table}.",
            )
        )
    if _has_inbound_chain(rs) and not _returns_mark(rs, mark):
        out.append(
            nft_repair(
                inbound_mark_return(mark),
                f"Envoy's own upstream connection (mark {mark}) loops back on lo into prerouting; without this return "
                "istio-inbound hands it to istio-tproxy and Envoy captures its own connection.",
            )
        )
    return out
