"""The engine's core vocabulary: addresses, families, packets, sockets, source references.

Every layer imports this; it imports nothing of the engine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @staticmethod
    def of(addr: IPAddress | IPNetwork) -> Family:
        return Family.IPV4 if addr.version == 4 else Family.IPV6


class CtState(StrEnum):
    """Conntrack states as the `conntrack --ctstate` / `state` matches see them."""

    NEW = "NEW"
    ESTABLISHED = "ESTABLISHED"
    RELATED = "RELATED"
    INVALID = "INVALID"
    UNTRACKED = "UNTRACKED"


class CtDirection(StrEnum):
    ORIGINAL = "ORIGINAL"
    REPLY = "REPLY"


# --------------------------------------------------------------------------
# Packets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One packet at one point of its journey.

    `uid`/`gid` are the owner of the sending socket (only for locally
    generated packets; the `owner` match never matches otherwise).
    `ctstate`/`ctdir`/`ctmark` are what conntrack has attached to the packet
    so far; the simulator fills them in at the conntrack hook.
    """

    src: IPAddress
    dst: IPAddress
    protocol: str = "tcp"
    sport: int = 0
    dport: int = 0
    tcp_flags: frozenset[str] = frozenset({"SYN"})
    in_iface: str | None = None
    out_iface: str | None = None
    mark: int = 0
    uid: int | None = None
    gid: int | None = None
    ctstate: CtState | None = None
    ctdir: CtDirection = CtDirection.ORIGINAL
    ctmark: int = 0

    @property
    def family(self) -> Family:
        return Family.of(self.src)

    def describe(self) -> str:
        sp = f":{self.sport}" if self.sport else ""
        dp = f":{self.dport}" if self.dport else ""
        s = f"[{self.src}]" if self.src.version == 6 and sp else str(self.src)
        d = f"[{self.dst}]" if self.dst.version == 6 and dp else str(self.dst)
        return f"{self.protocol} {s}{sp} -> {d}{dp}"


# --------------------------------------------------------------------------
# Netfilter rulesets
@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a parsed object came from: file name, 1-based line, original text."""

    source: str
    line: int
    text: str


class SocketRole(StrEnum):
    """Whose socket it is: what the story asks of an accepting socket, never read from its name."""

    ENVOY_LISTENER = "envoy-listener"
    APPLICATION = "application"
    DNS_PROXY = "dns-proxy"  # the sidecar's DNS proxy (istio-agent on 15053), where Istio's DNS capture sends
    OTHER = "other"


@dataclass(frozen=True)
class Socket:
    """A socket in the pod's network namespace, as far as lookups care.

    A listening socket has no `remote`.  `local_addr` None means a wildcard
    bind (0.0.0.0 / ::).  `transparent` is IP_TRANSPARENT; `mark` is SO_MARK.
    """

    protocol: str
    local_port: int
    local_addr: IPAddress | None = None
    remote_addr: IPAddress | None = None
    remote_port: int | None = None
    transparent: bool = False
    mark: int = 0
    uid: int | None = None
    gid: int | None = None
    name: str = ""  # "envoy listener virtualInbound", "application :8080" ... (for people; code reads `role`)
    role: SocketRole = SocketRole.OTHER
    family: Family = Family.IPV4  # needed for wildcard binds (0.0.0.0 vs ::)

    @property
    def listening(self) -> bool:
        return self.remote_addr is None

    def describe(self) -> str:
        if self.local_addr is not None:
            la = f"[{self.local_addr}]" if self.local_addr.version == 6 else str(self.local_addr)
        else:
            la = "*" if self.family == Family.IPV4 else "[::]"
        s = f"{self.protocol} {la}:{self.local_port}"
        if not self.listening:
            s += f" <-> {self.remote_addr}:{self.remote_port}"
        flags = []
        if self.transparent:
            flags.append("IP_TRANSPARENT")
        if self.mark:
            flags.append(f"SO_MARK={self.mark}")
        if flags:
            s += " (" + ", ".join(flags) + ")"
        return f"{self.name}: {s}" if self.name else s
