"""The fix's repairs in nftables syntax, for pods whose interception Istio programs with native nftables.

`meshviz.engine.fix.plans` writes its TPROXY repairs as iptables commands (`iptables -t mangle -A PREROUTING -p tcp
-m mark --mark 1337 -j CONNMARK --save-mark`, ...).  For an nft pod the same rules belong in Istio's
`inet istio-proxy-mangle` table, written exactly as Istio's nftables backend writes them:

    repair = connmark_save(1337)
    repair.rule        # "meta l4proto tcp mark 1337 counter ct mark set mark"
    repair.command()   # "nft add rule inet istio-proxy-mangle prerouting meta l4proto tcp mark 1337 counter ..."
    nft_commands([connmark_save(1337), inbound_mark_return(1337)])   # one `nft` command per repair
    nft_fragment([...])          # an `nft -f` fragment: table and chains (idempotent `add`), then the rules
    nft_repair_for("connmark-restore", 1337)   # by fix.py's repair key

One `inet` rule covers both families unless it matches an address (`ip daddr` / `ip6 daddr`), so only the
TPROXY and outbound-mark rules take a `family`.  The policy routing repairs (`ip rule add fwmark ...`,
`ip route add local default dev lo table ...`) are `ip` commands and read the same for nft pods.

`insert` repairs (a rule that must come first in its chain, iptables' `-I CHAIN 1`) are written without an
index: nft then puts the rule at the head, which also works on an empty chain (`index 0` would not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from meshviz.engine.core.model import Family
from meshviz.engine.istio.nft_builder import NftChain, NftOperation, NftRule, NftTable, concat, script_text
from meshviz.engine.istio.nft_generator import (
    ISTIO_DIVERT,
    ISTIO_INBOUND,
    ISTIO_TPROXY,
    MANGLE,
    OUTPUT,
    PREROUTING,
    SIDECAR_CHAINS,
    V6_LOOPBACK,
)
from meshviz.engine.istio.settings import DEFAULT_HOST_IPV4_LOOPBACK_CIDR, INBOUND_PASSTHROUGH_V4, OUTBOUND_MARK

__all__ = [
    "NFT_REPAIRS",
    "NftRepair",
    "connmark_restore",
    "connmark_save",
    "divert_rules",
    "inbound_mark_return",
    "inbound_passthrough_return",
    "nft_commands",
    "nft_fragment",
    "nft_repair_for",
    "outbound_mark",
    "tproxy_rule",
]

COUNTER = "counter"


@dataclass(frozen=True)
class NftRepair:
    """One rule to add to an Istio nft table: appended, or inserted at the head of its chain."""

    key: str
    title: str
    table: str
    chain: str
    rule: str
    where: Literal["append", "head"] = "append"

    def operation(self) -> NftOperation:
        return NftOperation("add" if self.where == "append" else "insert", NftRule(self.table, self.chain, self.rule))

    def command(self) -> str:
        """The shell command: `nft add rule inet TABLE CHAIN RULE` (`nft insert rule ...` for the head)."""
        return "nft " + self.operation().text()


def connmark_save(mark: int) -> NftRepair:
    """iptables `-t mangle -A PREROUTING -p tcp -m mark --mark M -j CONNMARK --save-mark`."""
    return NftRepair(
        "connmark-save",
        f"save mark {mark} on the connection (ct mark set mark)",
        MANGLE,
        PREROUTING,
        concat("meta l4proto tcp", "mark", str(mark), COUNTER, "ct mark set mark"),
    )


def connmark_restore(mark: int) -> NftRepair:
    """iptables `-t mangle -A OUTPUT -p tcp -m connmark --mark M -j CONNMARK --restore-mark`."""
    return NftRepair(
        "connmark-restore",
        "restore the connection's mark in output (meta mark set ct mark)",
        MANGLE,
        OUTPUT,
        concat("meta l4proto tcp", "ct", "mark", str(mark), COUNTER, "meta mark set", "ct", "mark"),
    )


def inbound_mark_return(mark: int) -> NftRepair:
    """iptables `-t mangle -I ISTIO_INBOUND 1 -p tcp -m mark --mark M -j RETURN`."""
    return NftRepair(
        "inbound-mark-return",
        f"return for mark {mark} at the top of istio-inbound",
        MANGLE,
        ISTIO_INBOUND,
        concat("meta l4proto tcp", "mark", str(mark), COUNTER, "return"),
        "head",
    )


def inbound_passthrough_return(family: Family = Family.IPV4) -> NftRepair:
    """iptables `-t mangle -I ISTIO_INBOUND 2 -p tcp -s 127.0.0.6/32 -i lo -j RETURN` (`::6/128` for IPv6):
    Envoy's inbound passthrough connections to the application are not captured again."""
    source = ("ip6 saddr", "::6/128") if family == Family.IPV6 else ("ip saddr", INBOUND_PASSTHROUGH_V4)
    return NftRepair(
        "inbound-passthrough-return",
        "return for Envoy's passthrough source at the top of istio-inbound",
        MANGLE,
        ISTIO_INBOUND,
        concat("iifname", "lo", "meta l4proto tcp", *source, COUNTER, "return"),
        "head",
    )


def tproxy_rule(mark: int, port: int = 15006, family: Family = Family.IPV4, loopback: str = "") -> NftRepair:
    """iptables `-t mangle -A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark M/0xffffffff
    --on-port P` (`::1/128` and `tproxy ip6` for IPv6)."""
    if family == Family.IPV6:
        match, to = ("ip6 daddr", "!=", V6_LOOPBACK), "tproxy ip6 to"
    else:
        match, to = ("ip daddr", "!=", loopback or DEFAULT_HOST_IPV4_LOOPBACK_CIDR.with_prefixlen), "tproxy ip to"
    return NftRepair(
        "tproxy",
        f"TPROXY new inbound connections to :{port} with mark {mark}",
        MANGLE,
        ISTIO_TPROXY,
        concat("meta l4proto tcp", *match, to, f":{port}", "meta mark set", str(mark), COUNTER, "accept"),
    )


def divert_rules(mark: int) -> tuple[NftRepair, NftRepair]:
    """iptables `-t mangle -A ISTIO_DIVERT -j MARK --set-mark M` and `-A ISTIO_DIVERT -j ACCEPT`."""
    return (
        NftRepair(
            "divert-mark",
            f"mark diverted packets {mark}",
            MANGLE,
            ISTIO_DIVERT,
            concat(COUNTER, "meta mark set", str(mark)),
        ),
        NftRepair("divert-accept", "accept diverted packets", MANGLE, ISTIO_DIVERT, concat(COUNTER, "accept")),
    )


def outbound_mark(
    owner: str, key: Literal["skuid", "skgid"] = "skuid", family: Family = Family.IPV4, loopback: str = ""
) -> NftRepair:
    """iptables `-t mangle -A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --uid-owner U -j MARK --set-mark 1338`:
    Envoy's connections to the application by pod IP are told apart from the application's own over lo."""
    if family == Family.IPV6:
        match: tuple[str, ...] = ("ip6 daddr", "!=", V6_LOOPBACK)
    else:
        match = ("ip daddr", "!=", loopback or DEFAULT_HOST_IPV4_LOOPBACK_CIDR.with_prefixlen)
    return NftRepair(
        "outbound-mark",
        f"mark the proxy's ({key} {owner}) connections over lo {OUTBOUND_MARK}",
        MANGLE,
        OUTPUT,
        concat("oifname", "lo", "meta l4proto tcp", *match, key, owner, COUNTER, "meta mark set", str(OUTBOUND_MARK)),
    )


#: fix.py's iptables repairs by key, as nft repairs of the pod's TPROXY mark.
NFT_REPAIRS: dict[str, Callable[[int], NftRepair]] = {
    "connmark-save": connmark_save,
    "connmark-restore": connmark_restore,
    "inbound-mark-return": inbound_mark_return,
}


def nft_repair_for(key: str, mark: int) -> NftRepair | None:
    """The nft form of fix.py's repair `key` (None for repairs that are not firewall rules)."""
    make = NFT_REPAIRS.get(key)
    return make(mark) if make is not None else None


def nft_commands(repairs: Iterable[NftRepair]) -> tuple[str, ...]:
    """One `nft` command per repair, in order (the table and its chains must exist: Istio created them)."""
    return tuple(r.command() for r in repairs)


def nft_fragment(repairs: Iterable[NftRepair]) -> str:
    """An `nft -f` fragment: `add table` and `add chain` for what the repairs use (no-ops when they exist,
    created as Istio declares them otherwise), then the repairs' rules in order."""
    repairs = list(repairs)
    ops: list[NftOperation] = []
    tables: list[str] = []
    for r in repairs:
        if r.table not in tables:
            tables.append(r.table)
    for table in tables:
        ops.append(NftOperation("add", NftTable(table)))
        used = [r.chain for r in repairs if r.table == table]
        declared = SIDECAR_CHAINS.get(table, ())
        ops += [NftOperation("add", c) for c in declared if c.name in used]
        known = {c.name for c in declared}
        for name in dict.fromkeys(used):
            if name not in known:
                ops.append(NftOperation("add", NftChain(table, name)))
    ops += [r.operation() for r in repairs]
    return script_text(ops)
