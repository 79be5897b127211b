"""istio-iptables' builder: the chains it creates, its ordered operations per family, and their renderings
(iptables-restore payloads, command lines).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import Family
from meshviz.engine.istio.settings import (
    CaptureSettings,
    Flavour,
)
from meshviz.engine.netfilter.model import Ruleset
from meshviz.engine.routing.model import PolicyRule, Route

# Chains istio-iptables creates.
ISTIO_OUTPUT = "ISTIO_OUTPUT"
ISTIO_OUTPUT_DNS = "ISTIO_OUTPUT_DNS"
ISTIO_INBOUND = "ISTIO_INBOUND"
ISTIO_DIVERT = "ISTIO_DIVERT"
ISTIO_TPROXY = "ISTIO_TPROXY"
ISTIO_REDIRECT = "ISTIO_REDIRECT"
ISTIO_IN_REDIRECT = "ISTIO_IN_REDIRECT"
ISTIO_DROP = "ISTIO_DROP"
ISTIO_CHAINS = (
    ISTIO_INBOUND,
    ISTIO_REDIRECT,
    ISTIO_IN_REDIRECT,
    ISTIO_OUTPUT,
    ISTIO_OUTPUT_DNS,
    ISTIO_DIVERT,
    ISTIO_TPROXY,
    ISTIO_DROP,
)

# Built-in chains and targets: never declared with -N (constants.BuiltInChainsAndTargetsMap).
_BUILTIN = frozenset({"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING", "ACCEPT", "RETURN", "DROP"})
# Stands for the family's own address in a rule added to both families (constants.IPVersionSpecific).
_VERSIONED = "\0ip-version-specific"
# The group istio-iptables' NFLOG trace rules log to.
_NFLOG_GROUP = "1337"


class TraceCommand(StrEnum):
    """The rules `--iptables-trace-logging` precedes with an NFLOG rule, by their log prefix."""

    JUMP_INBOUND = "JumpInbound"
    JUMP_OUTBOUND = "JumpOutbound"
    INBOUND_CAPTURE = "InboundCapture"
    EXCLUDE_INBOUND_PORT = "ExcludeInboundPort"
    INCLUDE_INBOUND_PORT = "IncludeInboundPort"
    KUBEVIRT = "KubevirtCommand"
    EXCLUDE_INTERFACE = "ExcludeInterfaceCommand"


@dataclass(frozen=True)
class BuiltRule:
    """One builder operation: `-A CHAIN ...` or `-I CHAIN N ...` in `table`."""

    table: str
    chain: str
    args: tuple[str, ...]

    def text(self) -> str:
        return " ".join(self.args)


@dataclass(frozen=True)
class GeneratedCapture:
    """What istio-iptables programs: iptables text and models per family, plus policy routing."""

    settings: CaptureSettings  # as applied (the CNI plugin's status ports merged in)
    flavour: Flavour
    rulesets: tuple[Ruleset, ...]
    restore_text: dict[Family, str]
    commands: dict[Family, tuple[str, ...]]
    operations: dict[Family, tuple[BuiltRule, ...]]
    ip_rule: tuple[str, ...] = ()
    ip_route: tuple[str, ...] = ()
    ip_addr: tuple[str, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    policy_rules: tuple[PolicyRule, ...] = ()
    routes: tuple[Route, ...] = ()
    notes: tuple[str, ...] = ()
    #: Problems reading the generated text back (none expected; reported rather than hidden).
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = field(default=())

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(rs.family for rs in self.rulesets)

    def ruleset(self, family: Family) -> Ruleset | None:
        for rs in self.rulesets:
            if rs.family == family:
                return rs
        return None

    def text(self, family: Family) -> str:
        """The text the rulesets were parsed from: restore input, or commands for legacy-1.23."""
        if self.flavour == "legacy-1.23":
            return "".join(line + "\n" for line in self.commands.get(family, ()))
        return self.restore_text.get(family, "")

    def transcript(self) -> str:
        """What Istio's dry-run tests record for these settings (the layout of the corpus goldens).

        capture: `iptables-save`/`ip6tables-save` probes, the IPv4 then the IPv6 restore payload,
        the final saves; cni-plugin: the payloads only; legacy-1.23: the commands, then the saves.
        """
        v6 = Family.IPV6 in self.families
        final_saves = "iptables-save\n" + ("ip6tables-save\n" if v6 else "")
        if self.flavour == "legacy-1.23":
            return self.text(Family.IPV4) + self.text(Family.IPV6) + final_saves
        payloads = self.restore_text.get(Family.IPV4, "") + self.restore_text.get(Family.IPV6, "")
        if self.flavour == "cni-plugin":
            return payloads
        return "iptables-save\nip6tables-save\n" + payloads + final_saves

    def ip_commands(self) -> tuple[str, ...]:
        """The `ip` commands as shell lines, in the order istio-iptables runs them (address, rules, routes)."""
        return tuple(f"ip {args}" for args in (*self.ip_addr, *self.ip_rule, *self.ip_route))


# --------------------------------------------------------------------------
# The builder: an ordered list of operations per family
# --------------------------------------------------------------------------


class _Builder:
    def __init__(self, ipv6: bool, trace: bool):
        self.ipv6 = ipv6
        self.trace = trace
        self.ops: dict[Family, list[BuiltRule]] = {Family.IPV4: [], Family.IPV6: []}

    def _families(self, family: Family | None) -> tuple[Family, ...]:
        if family is None:
            return (Family.IPV4, Family.IPV6) if self.ipv6 else (Family.IPV4,)
        if family == Family.IPV6 and not self.ipv6:
            return ()
        return (family,)

    def _add(
        self,
        family: Family,
        table: str,
        chain: str,
        params: tuple[str, ...],
        position: int | None,
        command: TraceCommand | None,
    ) -> None:
        head = ("-A", chain) if position is None else ("-I", chain, str(position))
        ops = self.ops[family]
        log: BuiltRule | None = None
        if self.trace and command is not None and "-j" in params:
            match = params[: params.index("-j")]
            nflog: tuple[str, ...] = (
                "-j",
                "NFLOG",
                "--nflog-prefix",
                f'"{command.value}"',
                "--nflog-group",
                _NFLOG_GROUP,
            )
            log = BuiltRule(table, chain, (*head, *match, *nflog, "--nflog-size", "20"))
        if log is not None and position is None:
            ops.append(log)  # appended: the log rule comes first
        ops.append(BuiltRule(table, chain, (*head, *params)))
        if log is not None and position is not None:
            ops.append(log)  # inserted at the same position after the rule: it ends up in front of it

    def append(
        self, table: str, chain: str, *params: str, family: Family | None = None, command: TraceCommand | None = None
    ) -> None:
        for fam in self._families(family):
            self._add(fam, table, chain, params, None, command)

    def insert(
        self,
        table: str,
        chain: str,
        position: int,
        *params: str,
        family: Family | None = None,
        command: TraceCommand | None = None,
    ) -> None:
        for fam in self._families(family):
            self._add(fam, table, chain, params, position, command)

    def append_versioned(
        self, v4: str, v6: str, table: str, chain: str, *params: str, command: TraceCommand | None = None
    ) -> None:
        """A rule for both families with the family's own address in place of `_VERSIONED`."""
        for fam, value in ((Family.IPV4, v4), (Family.IPV6, v6)):
            self.append(table, chain, *(value if p == _VERSIONED else p for p in params), family=fam, command=command)


def restore_payload(ops: list[BuiltRule] | tuple[BuiltRule, ...]) -> str:
    """iptables-restore input the way Istio writes it (`* table`, `-N` for every chain used, rules, COMMIT).

    Chains are declared in order of first use, then every jump target not declared yet; tables are
    sorted by name and empty ones left out.
    """
    tables: dict[str, list[str]] = {"filter": [], "nat": [], "mangle": []}
    seen: set[tuple[str, str]] = set()

    def declare(chain: str, table: str) -> None:
        if (chain, table) in seen:
            return
        seen.add((chain, table))
        if chain not in _BUILTIN:
            tables.setdefault(table, []).append(f"-N {chain}")

    for op in ops:
        declare(op.chain, op.table)
    for op in ops:
        if len(op.args) >= 2 and op.args[-2] == "-j":
            declare(op.args[-1], op.table)
    for op in ops:
        tables.setdefault(op.table, []).append(op.text())
    out = []
    for table in sorted(tables):
        if tables[table]:
            out.append(f"* {table}\n" + "".join(line + "\n" for line in tables[table]) + "COMMIT\n")
    return "".join(out)


def command_lines(ops: list[BuiltRule] | tuple[BuiltRule, ...], family: Family) -> tuple[str, ...]:
    """One `iptables`/`ip6tables` command per operation, preceded by the `-N` of every chain used."""
    program = "ip6tables" if family == Family.IPV6 else "iptables"
    lines = []
    seen: set[tuple[str, str]] = set()
    for op in ops:
        if (op.chain, op.table) not in seen:
            seen.add((op.chain, op.table))
            if op.chain not in _BUILTIN:
                lines.append(f"{program} -t {op.table} -N {op.chain}")
    lines.extend(f"{program} -t {op.table} {op.text()}" for op in ops)
    return tuple(lines)
