"""`ip -o addr` and `ip addr` output: the pod's interfaces and their addresses.

Optional evidence.  The routes already reveal most addresses (each has a host-sized `local` route), but only
`ip addr` says which interface is which kind, which addresses are secondary, and the prefix lengths of IPv6
addresses.  Both the one-line form (`ip -o addr`) and the default multi-line form are read; `ip -o link`
lines and `link/ether` lines are understood and skipped.  Errors are data: a line that is not address
output is a `ParseError` naming line and column.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import IPAddress
from meshviz.engine.routing.model import Interface

# `2: eth0@if7: <BROADCAST,...> mtu 1500 ...` (multi-line header) or `2: eth0    inet ...` (one-line form)
_HEADER_RE = re.compile(r"^(\d+):\s+([^\s:@]+)(?:@[^\s:]+)?(:?)\s*(.*)$")
_FAMILY_RE = re.compile(r"^(inet6?)\s+(\S+)(.*)$")


@dataclass(frozen=True)
class AddrEntry:
    iface: str
    address: IPAddress
    prefixlen: int
    scope: str = "global"
    secondary: bool = False
    line: int = 0


@dataclass(frozen=True)
class AddrParseResult:
    entries: tuple[AddrEntry, ...]
    links: tuple[str, ...]  # every interface named, in index order, with or without an address
    errors: tuple[ParseError, ...]
    warnings: tuple[ParseWarning, ...]

    def interfaces(self) -> tuple[Interface, ...]:
        """The interfaces with their addresses, primary (non-secondary, IPv4 first) addresses first."""
        out = []
        for name in self.links:
            mine = [e for e in self.entries if e.iface == name]
            mine.sort(key=lambda e: (e.address.version, e.secondary))
            out.append(Interface(name, tuple(e.address for e in mine), loopback=name == "lo"))
        return tuple(out)

    def prefixes(self) -> dict[IPAddress, int]:
        return {e.address: e.prefixlen for e in self.entries}


def parse_ip_addr(text: str, source: str = "ip-addr") -> AddrParseResult:
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    entries: list[AddrEntry] = []
    links: list[str] = []
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        body = line.strip()
        if not body or body.startswith(("#", "$ ")):
            continue
        # The one-line form folds continuation lines with a backslash: keep what is before it.
        body = body.split("\\", 1)[0].strip()
        m = _HEADER_RE.match(body)
        rest = body
        if m is not None:
            current = m.group(2)
            if current not in links:
                links.append(current)
            rest = m.group(4).strip()
            if m.group(3) == ":" or rest.startswith(("<", "link/")) or not rest:
                continue  # a link header (`ip addr` / `ip -o link`): the addresses follow
        if rest.startswith(("link/", "valid_lft", "altname", "vrf_slave", "netns")):
            continue
        fm = _FAMILY_RE.match(rest)
        if fm is None:
            col = line.find(rest) + 1 if rest else 1
            errors.append(
                ParseError(source, lineno, max(col, 1), body, "not `ip addr` output (expected `inet` or `inet6`)")
            )
            continue
        if current is None:
            errors.append(ParseError(source, lineno, 1, body, "an address line before any interface line"))
            continue
        addr_text = fm.group(2)
        try:
            iface_net = ipaddress.ip_interface(addr_text.split(" ")[0])
        except ValueError:
            col = line.find(addr_text) + 1
            errors.append(ParseError(source, lineno, col, body, f"not an address: {addr_text!r}"))
            continue
        if (fm.group(1) == "inet6") != (iface_net.version == 6):
            col = line.find(addr_text) + 1
            errors.append(ParseError(source, lineno, col, body, f"{fm.group(1)} with a {iface_net.version} address"))
            continue
        words = fm.group(3).split()
        scope = words[words.index("scope") + 1] if "scope" in words and words.index("scope") + 1 < len(words) else ""
        if "peer" in words:
            warnings.append(ParseWarning(source, lineno, body, "point-to-point peer address: only the local one kept"))
        entries.append(
            AddrEntry(
                iface=current,
                address=iface_net.ip,
                prefixlen=iface_net.network.prefixlen,
                scope=scope or "global",
                secondary="secondary" in words,
                line=lineno,
            )
        )
    if not entries and not errors and text.strip():
        errors.append(ParseError(source, 1, 1, text.strip().splitlines()[0], "no address found in `ip addr` output"))
    return AddrParseResult(tuple(entries), tuple(links), tuple(errors), tuple(warnings))
