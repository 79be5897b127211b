"""Which base chains run at a hook, in what order: iptables' tables and nft base chains interleaved by priority.

Netfilter calls every function registered on a hook in priority order.  iptables' tables (legacy or
iptables-nft) sit at fixed priorities - raw -300, conntrack -200, mangle -150, nat -100 (destination NAT at
PREROUTING/OUTPUT) or 100 (source NAT at INPUT/POSTROUTING), filter 0, security 50 - and every nft base chain
of an `ip`/`inet` table (IPv4 packets) or `ip6`/`inet` table (IPv6) at its own priority.  An ACCEPT from one
of them only ends that one: the next function on the hook still runs; a DROP ends the packet.

NAT chains are different: the NAT core registers one function per hook (at -100 or 100) and runs the hook's
NAT chains - iptables' nat table and every nft `type nat` chain - in priority order inside it, for a
connection's first packet only, stopping at the first one that set up a binding (nf_nat_inet_fn).  At equal
priorities the function registered last runs first (nf_hook_entries_grow inserts a new entry before the first
one of the same or a higher priority).  `nft list ruleset` prints tables in the order they were created, and
with iptables-nft it shows iptables' own tables too (`table ip nat { chain PREROUTING ...`): where they appear
says when iptables registered.  Without them in the listing, iptables' tables are taken as the oldest (they run
after nft chains of the same priority).

When iptables-save evidence is given as well, those iptables-nft tables in the nft listing are the same rules
a second time: they are simulated once, from iptables-save (`is_iptables_nft`).
"""

from __future__ import annotations

from meshviz.engine.core.model import Family
from meshviz.engine.nftables.evaluate import BaseChain
from meshviz.engine.nftables.model import NftRuleset, NftTable

#: iptables' tables at each hook, in the kernel's order ("conntrack" is conntrack's own hook function).
IPTABLES_ORDER: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "conntrack", "mangle", "nat"),
    "INPUT": ("mangle", "filter", "security", "nat"),
    "FORWARD": ("mangle", "filter", "security"),
    "OUTPUT": ("raw", "conntrack", "mangle", "nat", "filter", "security"),
    "POSTROUTING": ("mangle", "nat"),
}
PRIORITY = {"raw": -300, "conntrack": -200, "mangle": -150, "filter": 0, "security": 50}
_FAMILIES = {Family.IPV4: ("ip", "inet"), Family.IPV6: ("ip6", "inet")}
IPTABLES_NFT_TABLES = ("raw", "mangle", "nat", "filter", "security")


def is_iptables_nft(table: NftTable) -> bool:
    """A table iptables-nft made: `ip`/`ip6` family, one of iptables' table names, chains named as
    iptables' built-in chains (upper case)."""
    return (
        table.family in ("ip", "ip6")
        and table.name in IPTABLES_NFT_TABLES
        and any(c.name.isupper() for c in table.base_chains())
    )


def nat_priority(hook: str) -> int:
    """The NAT core's priority at a hook: destination NAT -100, source NAT 100."""
    return -100 if hook in ("PREROUTING", "OUTPUT") else 100


def table_priority(table: str, hook: str) -> int:
    return nat_priority(hook) if table == "nat" else PRIORITY[table]


Slot = str | BaseChain


class NftHooks:
    """The nft base chains of a ruleset by (family, hook), sorted by priority."""

    def __init__(self, ruleset: NftRuleset | None, iptables_given: bool = False):
        self.chains: dict[tuple[Family, str], list[BaseChain]] = {}
        self.unmodelled: list[BaseChain] = []
        self.order: dict[str, int] = {}  # table label -> position in the listing (creation order)
        tables = ruleset.tables if ruleset is not None else ()
        xt = [n for n, t in enumerate(tables) if is_iptables_nft(t)]
        self.iptables_order = xt[0] if xt else -1
        for n, t in enumerate(tables):
            self.order[t.label] = n
            if iptables_given and is_iptables_nft(t):
                continue  # simulated from iptables-save
            for c in t.base_chains():  # a listing's other chains stay unbuilt
                hook = (c.hook or "").upper()
                fams = [f for f, names in _FAMILIES.items() if t.family in names]
                if hook not in IPTABLES_ORDER or not fams:
                    self.unmodelled.append(BaseChain(t, c))
                    continue
                for f in fams:
                    self.chains.setdefault((f, hook), []).append(BaseChain(t, c))
        for lst in self.chains.values():
            lst.sort(key=lambda bc: (bc.priority, -self.order[bc.table.label]))

    def __bool__(self) -> bool:
        return bool(self.chains)

    def plan(self, family: Family, hook: str, tables: tuple[str, ...]) -> list[Slot]:
        """`tables` (a run of IPTABLES_ORDER[hook]) with the nft chains whose priority falls in that run merged
        in: after the table before the run (exclusive) up to the run's last table (or beyond, when it is the
        hook's last).  NAT chains are not here: they run inside the "nat" slot (`nat_lookups`)."""
        mine = [bc for bc in self.chains.get((family, hook), ()) if bc.chain.type != "nat"]
        if not mine:
            return list(tables)
        order = IPTABLES_ORDER[hook]
        first, last = order.index(tables[0]), order.index(tables[-1])
        lo = table_priority(order[first - 1], hook) if first > 0 else None
        hi = table_priority(order[last], hook) if last < len(order) - 1 else None
        picked = [bc for bc in mine if (lo is None or bc.priority > lo) and (hi is None or bc.priority <= hi)]
        slots: list[tuple[int, int, Slot]] = [(table_priority(t, hook), -self.iptables_order, t) for t in tables]
        slots += [(bc.priority, -self.order[bc.table.label], bc) for bc in picked]
        slots.sort(key=lambda s: (s[0], s[1]))
        return [s[2] for s in slots]

    def nat_lookups(self, family: Family, hook: str) -> list[Slot]:
        """iptables' nat table ("nat") and the nft NAT chains at this hook, in priority order."""
        mine = [bc for bc in self.chains.get((family, hook), ()) if bc.chain.type == "nat"]
        slots: list[tuple[int, int, Slot]] = [(nat_priority(hook), -self.iptables_order, "nat")]
        slots += [(bc.priority, -self.order[bc.table.label], bc) for bc in mine]
        slots.sort(key=lambda s: (s[0], s[1]))
        return [s[2] for s in slots]
