"""Validating option values as iptables does: numbers, ports and ranges, marks, id ranges, conntrack states,
address types, TCP flags, rates, interfaces, protocols, addresses (with iptables' legacy IPv4 forms), host:port
and reject types. A validator returns an error message or None, and the family a value implies.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

from meshviz.engine.core.model import Family
from meshviz.engine.core.names import (
    canonical_protocol,
    service_port,
)
from meshviz.engine.netfilter.spec import STANDARD_TARGETS, TARGETS

# --------------------------------------------------------------------------
# Value validation
# --------------------------------------------------------------------------

# A validator returns None when the value is fine, else an error message.  It
# may also report the address family the value implies (for payloads whose
# family must be inferred from their content).
Validator = Callable[[str], "tuple[str | None, Family | None]"]

_OK: tuple[str | None, Family | None] = (None, None)


_INT_RE = re.compile(r"(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\Z")


def parse_uint(text: str, maximum: int = 0xFFFFFFFF) -> int | None:
    """strtoul(text, 0) as iptables uses it: decimal, 0x hex or 0 octal; None if invalid."""
    if not _INT_RE.match(text):
        return None
    v = int(text, 0) if not (len(text) > 1 and text[0] == "0" and text[1] not in "xX") else int(text, 8)
    return v if v <= maximum else None


def _port(text: str) -> str | None:
    if service_port(text) is not None:
        return None
    if text.isdigit():
        return f"invalid port/service `{text}' specified"
    return f"invalid port/service `{text}' specified (not a number and not a service name in netbase's /etc/services)"


def _v_port(v: str) -> tuple[str | None, Family | None]:
    return _port(v), None


def _v_portrange(v: str) -> tuple[str | None, Family | None]:
    if ":" not in v:
        return _port(v), None
    lo, _, hi = v.partition(":")
    for p in (lo, hi):
        if p:
            err = _port(p)
            if err:
                return err, None
    if lo.isdigit() and hi.isdigit() and int(lo) > int(hi):
        return "invalid portrange (min > max)", None
    return _OK


def _v_portlist(v: str) -> tuple[str | None, Family | None]:
    parts = v.split(",")
    count = 0
    for part in parts:
        if part == "":
            return f"invalid port list `{v}' (empty element)", None
        err, _ = _v_portrange(part)
        if err:
            return err, None
        count += 2 if ":" in part else 1
    if count > 15:
        return f"too many ports specified in `{v}' (at most 15, a range counts as two)", None
    return _OK


def _v_natports(v: str) -> tuple[str | None, Family | None]:
    lo, sep, hi = v.partition("-")
    for p in (lo, hi) if sep else (lo,):
        if not p.isdigit() or int(p) > 65535:
            return f"invalid port `{p}' in `{v}'", None
    if sep and int(lo) > int(hi):
        return f"invalid port range `{v}' (min > max)", None
    return _OK


def _v_int(v: str) -> tuple[str | None, Family | None]:
    return (None if parse_uint(v) is not None else f"`{v}' is not an unsigned integer"), None


def _v_intrange(v: str) -> tuple[str | None, Family | None]:
    for sep in (":", "-"):
        if sep in v:
            lo, _, hi = v.partition(sep)
            for p in (lo, hi):
                if p and parse_uint(p) is None:
                    return f"`{v}' is not a number or range", None
            return _OK
    return _v_int(v)


def _v_mark(v: str) -> tuple[str | None, Family | None]:
    value, sep, mask = v.partition("/")
    if parse_uint(value) is None or (sep and parse_uint(mask) is None):
        return f"bad mark `{v}' (expected value[/mask], each a 32-bit number)", None
    return _OK


def _v_idrange(v: str) -> tuple[str | None, Family | None]:
    lo, sep, hi = v.partition("-")
    if lo.isdigit() and (not sep or hi.isdigit()):
        if sep and int(lo) > int(hi):
            return f"bad id range `{v}' (min > max)", None
        return _OK
    if not sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*\$?", v):
        return _OK  # a user or group name, resolved on the host
    return f"bad user/group `{v}' (expected a name, a number or number-number)", None


_CTSTATES = {"INVALID", "ESTABLISHED", "NEW", "RELATED", "UNTRACKED", "SNAT", "DNAT"}
_STATES = {"INVALID", "ESTABLISHED", "NEW", "RELATED", "UNTRACKED"}
_CTSTATUS = {"NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"}
_ADDRTYPES = {
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
}
_TCPFLAGS = {"SYN", "ACK", "FIN", "RST", "URG", "PSH", "ALL", "NONE", "ECE", "CWR"}


def _set_of(valid: set[str], what: str, upper: bool = True) -> Validator:
    def check(v: str) -> tuple[str | None, Family | None]:
        for item in v.split(","):
            if (item.upper() if upper else item) not in valid:
                return f"bad {what} `{item}' in `{v}' (valid: {', '.join(sorted(valid))})", None
        return _OK

    return check


def _v_tcpflags(v: str) -> tuple[str | None, Family | None]:
    return _set_of(_TCPFLAGS, "TCP flag")(v)


def _v_probability(v: str) -> tuple[str | None, Family | None]:
    try:
        p = float(v)
    except ValueError:
        return f"bad probability `{v}'", None
    return (None if 0.0 <= p <= 1.0 else f"probability `{v}' must be between 0 and 1"), None


def _v_statmode(v: str) -> tuple[str | None, Family | None]:
    return (None if v in ("random", "nth") else f"bad statistic mode `{v}' (random or nth)"), None


def _v_rate(v: str) -> tuple[str | None, Family | None]:
    if re.fullmatch(r"[0-9]+(/(s|sec|second|m|min|minute|h|hour|d|day)?)?|[0-9]+(b|kb|mb|gb)/s", v):
        return _OK
    return f"bad rate `{v}' (expected N[/second|/minute|/hour|/day])", None


def _v_mac(v: str) -> tuple[str | None, Family | None]:
    if re.fullmatch(r"[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}", v):
        return _OK
    return f"bad MAC address `{v}'", None


def _v_iface(v: str) -> tuple[str | None, Family | None]:
    if len(v) > 15:
        return f"interface name `{v}' must be shorter than IFNAMSIZ (15)", None
    return _OK


def _v_proto(v: str) -> tuple[str | None, Family | None]:
    return (None if canonical_protocol(v) is not None else f"unknown protocol `{v}' specified"), None


def _v_string(v: str) -> tuple[str | None, Family | None]:
    return _OK


# Address parsing lives here too, shared with the parser's -s/-d handling.

_addr_cache: dict[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, str | None, str | None]] = {}
_DOTTED_RE = re.compile(r"[0-9]+(\.[0-9]+){0,3}\Z")


def _legacy_ipv4(text: str) -> tuple[int | None, str | None]:
    """iptables' own dotted-quad parser: missing octets are 0, leading 0 means octal."""
    parts = text.split(".")
    if len(parts) > 4:
        return None, None
    value = 0
    odd = len(parts) < 4
    for p in parts:
        try:
            n = int(p, 8) if len(p) > 1 and p[0] == "0" else int(p)
        except ValueError:  # a leading 0 with an 8 or 9 in it: not octal, not an address (found by tests/fuzz)
            return None, None
        if n > 255:
            return None, None
        if len(p) > 1 and p[0] == "0":
            odd = True
        value = (value << 8) | n
    value <<= 8 * (4 - len(parts))
    note = f"address `{text}' is read by iptables as {ipaddress.IPv4Address(value)}" if odd else None
    return value, note


def parse_address(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, str | None, str | None]:
    """Parse an iptables address `ip[/prefix|/netmask]`.

    Returns (network, error, note): network is None on error; note is a
    warning when the text is understood but unusual (iptables' octal or short
    dotted forms).  Host bits are cleared, as iptables does.
    """
    hit = _addr_cache.get(text)
    if hit is not None:
        return hit
    result = _parse_address(text)
    if len(_addr_cache) < 500_000:
        _addr_cache[text] = result
    return result


def _parse_address(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, str | None, str | None]:
    addr, sep, mask = text.partition("/")
    try:
        packed = socket.inet_pton(socket.AF_INET, addr)  # strict dotted quad, the common case
    except (OSError, ValueError):  # ValueError: an embedded NUL (found by tests/fuzz)
        pass
    else:
        value = int.from_bytes(packed, "big")
        if not sep:
            return ipaddress.IPv4Network(value), None, None
        if mask.isdigit() and int(mask) <= 32:
            return ipaddress.IPv4Network((value, int(mask)), strict=False), None, None
    note: str | None = None
    if ":" in addr:
        try:
            ip6 = ipaddress.IPv6Address(addr)
        except ValueError:
            return None, f"host/network `{text}' not found (not an IPv6 address)", None
        if not sep:
            return ipaddress.IPv6Network((ip6, 128)), None, None
        if not mask.isdigit() or int(mask) > 128:
            return None, f"invalid mask `{mask}' specified", None
        return ipaddress.IPv6Network((ip6, int(mask)), strict=False), None, None
    if not _DOTTED_RE.match(addr):
        if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", addr):
            return None, f"host name `{addr}' cannot be resolved offline; give an address", None
        return None, f"host/network `{text}' not found", None
    parts = addr.split(".")
    if len(parts) == 4 and all(len(p) == 1 or p[0] != "0" for p in parts):
        try:
            ip4 = ipaddress.IPv4Address(addr)
        except ValueError:
            return None, f"host/network `{text}' not found", None
    else:
        legacy, note = _legacy_ipv4(addr)
        if legacy is None:
            return None, f"host/network `{text}' not found", None
        ip4 = ipaddress.IPv4Address(legacy)
    if not sep:
        return ipaddress.IPv4Network((ip4, 32)), None, note
    if mask.isdigit():
        if int(mask) > 32:
            return None, f"invalid mask `{mask}' specified", None
        return ipaddress.IPv4Network((ip4, int(mask)), strict=False), None, note
    try:
        return ipaddress.IPv4Network(f"{ip4}/{mask}", strict=False), None, note
    except ValueError:
        return None, f"invalid mask `{mask}' specified", None


def _v_addr(v: str) -> tuple[str | None, Family | None]:
    net, err, _ = parse_address(v)
    if net is None:
        return err, None
    return None, Family.of(net)


def _v_ip(v: str) -> tuple[str | None, Family | None]:
    for af, fam in ((socket.AF_INET, Family.IPV4), (socket.AF_INET6, Family.IPV6)):
        try:
            socket.inet_pton(af, v)
        except (OSError, ValueError):  # ValueError: an embedded NUL
            continue
        return None, fam
    return f"bad IP address `{v}'", None


def _v_addrrange(v: str) -> tuple[str | None, Family | None]:
    lo, sep, hi = v.partition("-")
    err, fam = _v_ip(lo)
    if err or not sep:
        return err, fam
    err2, fam2 = _v_ip(hi)
    if err2:
        return err2, None
    if fam != fam2:
        return f"address range `{v}' mixes IPv4 and IPv6", None
    return None, fam


_HOSTPORT6 = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::([0-9]+(?:-[0-9]+)?(?:/[0-9]+)?))?\Z")


def _v_hostport(v: str) -> tuple[str | None, Family | None]:
    """DNAT/SNAT `[ipaddr[-ipaddr]][:port[-port]]`, IPv6 as `[addr]:port` or a bare address."""
    m = _HOSTPORT6.match(v)
    if m:
        err, fam6 = _v_ip(m.group(1))
        if err:
            return err, None
        if m.group(2):
            err = _v_natports(m.group(2).split("/")[0])[0]
        return err, fam6
    if v.count(":") > 1:  # bare IPv6 address or range
        return _v_addrrange(v)
    host, sep, ports = v.partition(":")
    fam: Family | None = None
    if host:
        err, fam = _v_addrrange(host)
        if err:
            return err, None
    if sep:
        err = _v_natports(ports.split("/")[0])[0]
        if err:
            return err, None
    if not host and not sep:
        return "empty address", None
    return None, fam


_REJECT_V4 = {
    "icmp-net-unreachable",
    "net-unreach",
    "icmp-host-unreachable",
    "host-unreach",
    "icmp-proto-unreachable",
    "proto-unreach",
    "icmp-port-unreachable",
    "port-unreach",
    "icmp-net-prohibited",
    "net-prohib",
    "icmp-host-prohibited",
    "host-prohib",
    "tcp-reset",
    "tcp-rst",
    "icmp-admin-prohibited",
    "admin-prohib",
}
_REJECT_V6 = {
    "icmp6-no-route",
    "no-route",
    "icmp6-adm-prohibited",
    "adm-prohibited",
    "icmp6-addr-unreachable",
    "addr-unreach",
    "icmp6-port-unreachable",
    "port-unreach",
    "tcp-reset",
    "icmp6-policy-fail",
    "policy-fail",
    "icmp6-reject-route",
    "reject-route",
}


def _v_rejectwith(v: str) -> tuple[str | None, Family | None]:
    in4, in6 = v in _REJECT_V4, v in _REJECT_V6
    if not in4 and not in6:
        return f"unknown reject type `{v}'", None
    if in4 and in6:
        return _OK
    return None, Family.IPV4 if in4 else Family.IPV6


VALIDATORS: dict[str, Validator] = {
    "any": lambda v: _OK,
    "string": _v_string,
    "port": _v_port,
    "portrange": _v_portrange,
    "portlist": _v_portlist,
    "natports": _v_natports,
    "int": _v_int,
    "intrange": _v_intrange,
    "mark": _v_mark,
    "idrange": _v_idrange,
    "ctstate": _set_of(_CTSTATES, "ctstate"),
    "state": _set_of(_STATES, "state"),
    "ctstatus": _set_of(_CTSTATUS, "ctstatus"),
    "ctdir": _set_of({"ORIGINAL", "REPLY"}, "direction"),
    "addrtype": _set_of(_ADDRTYPES, "address type"),
    "tcpflags": _v_tcpflags,
    "probability": _v_probability,
    "statmode": _v_statmode,
    "rate": _v_rate,
    "mac": _v_mac,
    "iface": _v_iface,
    "proto": _v_proto,
    "addr": _v_addr,
    "addrrange": _v_addrrange,
    "hostport": _v_hostport,
    "rejectwith": _v_rejectwith,
}

_value_cache: dict[tuple[str, str], tuple[str | None, Family | None]] = {}


def check_value(kind: str, value: str) -> tuple[str | None, Family | None]:
    """Validate one option value; (error or None, address family it implies or None)."""
    key = (kind, value)
    hit = _value_cache.get(key)
    if hit is not None:
        return hit
    res = VALIDATORS.get(kind, VALIDATORS["any"])(value)
    if len(_value_cache) < 200_000:
        _value_cache[key] = res
    return res


_SPACE_RE = re.compile(r"\s")

# Chain names: iptables limits them to 28 characters (XT_EXTENSION_MAXNAMELEN - 1).
MAX_CHAIN_NAME = 28


def chain_name_problem(name: str) -> str | None:
    """Why iptables would refuse `name` as a user-defined chain name (None if fine)."""
    if not name:
        return "empty chain name"
    if len(name) > MAX_CHAIN_NAME:
        return f"chain name `{name}' too long (must be under 29 chars)"
    if name.startswith("-") or name.startswith("!"):
        return f"chain name `{name}' may not start with `{name[0]}'"
    if _SPACE_RE.search(name):
        return f"invalid chain name `{name}'"
    if name in STANDARD_TARGETS or name in TARGETS:
        return f"chain name `{name}' clashes with a target name"
    return None
