"""A snapshot: everything known about one pod's network namespace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshviz.engine.core.model import Family, Socket
from meshviz.engine.netfilter.model import Ruleset
from meshviz.engine.routing.model import Interface, RoutingConfig, Sysctls

if TYPE_CHECKING:
    from meshviz.engine.nftables.model import NftRuleset


@dataclass(frozen=True)
class Snapshot:
    """Everything known about one pod's network namespace."""

    rulesets: tuple[Ruleset, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    sysctls: Sysctls = field(default_factory=Sysctls)
    interfaces: tuple[Interface, ...] = ()
    sockets: tuple[Socket, ...] | None = None  # None: unknown (lookups are assumed)
    assumptions: tuple[str, ...] = ()
    nftables: NftRuleset | None = None  # native nftables tables (`nft list ruleset`), beside `rulesets`

    def ruleset(self, family: Family) -> Ruleset | None:
        for r in self.rulesets:
            if r.family == family:
                return r
        return None

    def interface(self, name: str) -> Interface | None:
        for i in self.interfaces:
            if i.name == name:
                return i
        return None
