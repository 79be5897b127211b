"""The knobs of Istio's sidecar traffic capture, as one frozen value.

`CaptureSettings` holds every input `istio-iptables` (and the istio-cni plugin,
which runs the same code) reads when it programs a pod: the interception mode,
Envoy's ports, the proxy's uid/gid, the inbound and outbound port and address
selections, owner groups, interfaces, DNS capture, IPv6 and the TPROXY mark and
routing table.  Field defaults are the `istio-iptables` binary's own defaults
(no inbound capture, no outbound capture); `istio_init_defaults()` and
`cni_plugin_defaults()` give what a default sidecar injection or the CNI plugin
hands it.

Values are typed (ports are ints, CIDRs `ipaddress` interfaces, DNS servers
validated address literals kept as written).  `CaptureSettings.from_values`
accepts the loose forms Istio's flags and annotations use - `"3,4"`,
`"6000,7000,"` (trailing comma), `"*"`, `""` - and raises `SettingsError`
carrying a `SettingIssue` (the knob, the value, what is wrong) when one is
malformed.  The constructor validates too.

Where Istio's code was read: `tools/istio-iptables/pkg/config` (defaults,
`Split`, `ParseInterceptFilter`, owner-group and loopback CIDR validation),
`tools/istio-iptables/pkg/constants` (flag names, env-only knobs) and
`cni/pkg/plugin/sidecar_redirect.go` (the plugin's defaults and the ports it
always excludes).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any, Literal, TypeAlias

__all__ = [
    "CNI_STATUS_PORTS",
    "DEFAULT_HOST_IPV4_LOOPBACK_CIDR",
    "DNS_LISTENER_PORT",
    "FLAVOURS",
    "INBOUND_PASSTHROUGH_V4",
    "INBOUND_PASSTHROUGH_V6",
    "OUTBOUND_MARK",
    "WILDCARD",
    "CaptureSettings",
    "Cidr",
    "CidrSelection",
    "Flavour",
    "InterceptionMode",
    "PortSelection",
    "SettingIssue",
    "SettingsError",
    "parse_bool",
    "parse_cidr_list",
    "parse_cidr_selection",
    "parse_dns_servers",
    "parse_id_list",
    "parse_name_list",
    "parse_port",
    "parse_port_list",
    "parse_port_selection",
    "split_list",
]

WILDCARD: Literal["*"] = "*"

#: Which generator layout to reproduce.
#:  * ``capture``: `istio-iptables` as run by the `istio-init` container (restore format, istio master
#:    at the corpus commit);
#:  * ``cni-plugin``: the same code run by the istio-cni plugin, which also excludes its status ports;
#:  * ``legacy-1.23``: `istio-iptables` 1.23, the last release that ran one iptables command per rule.
Flavour: TypeAlias = Literal["capture", "cni-plugin", "legacy-1.23"]
FLAVOURS: tuple[Flavour, ...] = ("capture", "cni-plugin", "legacy-1.23")

#: Ports the CNI plugin always appends to the inbound exclusions (pilot-agent status, health, Envoy stats).
CNI_STATUS_PORTS: tuple[int, ...] = (15020, 15021, 15090)
#: istio-agent's DNS proxy.
DNS_LISTENER_PORT = 15053
#: TPROXY mode: the mark Envoy's outbound-to-app-by-pod-IP packets get (constants.OutboundMark).
OUTBOUND_MARK = 1338
#: Source address of Envoy's inbound passthrough connections to the application.
INBOUND_PASSTHROUGH_V4 = "127.0.0.6/32"
INBOUND_PASSTHROUGH_V6 = "::6/128"
#: ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR's default.
DEFAULT_HOST_IPV4_LOOPBACK_CIDR = ipaddress.IPv4Interface("127.0.0.1/32")

Cidr: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface
PortSelection: TypeAlias = tuple[int, ...] | Literal["*"]
CidrSelection: TypeAlias = tuple[Cidr, ...] | Literal["*"]
GroupSelection: TypeAlias = tuple[str, ...] | Literal["*"]

#: Istio refuses more owner groups to include than this (config.maxOwnerGroupsInclude).
MAX_OWNER_GROUPS_INCLUDE = 64

# A user or group as iptables' owner match takes it: a number or a name.
_OWNER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\$?$")
# Interface names: at most 15 bytes, no '/', no whitespace (dev_valid_name).
_IFACE_NAME = re.compile(r"^[^/\s:]{1,15}$")


class InterceptionMode(StrEnum):
    """How inbound connections reach Envoy (`-m` / `sidecar.istio.io/interceptionMode`)."""

    REDIRECT = "REDIRECT"
    TPROXY = "TPROXY"


@dataclass(frozen=True)
class SettingIssue:
    """A malformed value: which knob, flag or annotation, the value as given, and what is wrong."""

    name: str
    value: str
    message: str
    source: str = "settings"

    def __str__(self) -> str:
        return f"{self.source}: {self.name}={self.value!r}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SettingsError(ValueError):
    """Raised by the parsing helpers and `CaptureSettings` for a malformed value; carries the issue as data."""

    def __init__(self, issue: SettingIssue):
        self.issue = issue
        super().__init__(str(issue))


def _fail(name: str, value: object, message: str) -> SettingsError:
    return SettingsError(SettingIssue(name=name, value=str(value), message=message))


# --------------------------------------------------------------------------
# Parsing helpers for the loose forms Istio accepts
# --------------------------------------------------------------------------


def split_list(value: str) -> list[str]:
    """Istio's `config.Split`: comma separated, empty items dropped (so `"6000,7000,"` works).

    Items are also stripped of surrounding blanks, which Istio does not do (it would hand
    `" 80"` to iptables, which accepts it too).
    """
    return [item.strip() for item in value.split(",") if item.strip()]


def _items(name: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, Iterable):
        out: list[str] = []
        for item in value:
            if isinstance(item, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
                out.append(item.with_prefixlen)
            elif isinstance(item, str | int | ipaddress.IPv4Address | ipaddress.IPv6Address) and not isinstance(
                item, bool
            ):
                out.extend(split_list(str(item)))
            else:
                raise _fail(name, value, f"unexpected item {item!r}")
        return out
    raise _fail(name, value, "expected a comma separated string or a list")


def parse_port(name: str, value: object) -> int:
    """One port number, 1-65535."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise _fail(name, value, "not a port number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _fail(name, value, "port out of range 1-65535")
    return port


def parse_port_list(name: str, value: object) -> tuple[int, ...]:
    """`"80,443,"` / `[80, "443"]` -> (80, 443); `""` -> ()."""
    out = []
    for item in _items(name, value):
        if item == WILDCARD:
            raise _fail(name, value, "'*' is not allowed here")
        if ":" in item or "-" in item:
            raise _fail(name, value, f"port ranges are not supported ({item!r})")
        try:
            out.append(parse_port(name, item))
        except SettingsError as e:
            raise _fail(name, value, f"{item!r}: {e.issue.message}") from None
    return tuple(out)


def parse_port_selection(name: str, value: object) -> PortSelection:
    """Like `parse_port_list`, but `"*"` selects every port."""
    if isinstance(value, str) and value.strip() == WILDCARD:
        return WILDCARD
    return parse_port_list(name, value)


def _cidr(name: str, whole: object, item: str) -> Cidr:
    try:
        return ipaddress.ip_interface(item)
    except ValueError:
        raise _fail(name, whole, f"{item!r} is not an IP address or CIDR") from None


def parse_cidr_list(name: str, value: object) -> tuple[Cidr, ...]:
    """IPv4 and IPv6 CIDRs (a bare address is a /32 or /128); host bits are kept as written."""
    out = []
    for item in _items(name, value):
        if item == WILDCARD:
            raise _fail(name, value, "'*' is not allowed here")
        out.append(_cidr(name, value, item))
    return tuple(out)


def parse_cidr_selection(name: str, value: object) -> CidrSelection:
    """Like `parse_cidr_list`, but `"*"` selects every destination of both families."""
    if isinstance(value, str) and value.strip() == WILDCARD:
        return WILDCARD
    return parse_cidr_list(name, value)


def parse_id_list(name: str, value: object) -> tuple[str, ...]:
    """Users or groups for the owner match: numbers or names, `"3,4"` -> ("3", "4")."""
    out = []
    for item in _items(name, value):
        if not _OWNER_NAME.match(item):
            raise _fail(name, value, f"{item!r} is not a user/group name or id")
        out.append(item)
    return tuple(out)


def parse_name_list(name: str, value: object) -> tuple[str, ...]:
    """Interface names."""
    out = []
    for item in _items(name, value):
        if not _IFACE_NAME.match(item):
            raise _fail(name, value, f"{item!r} is not a valid interface name")
        out.append(item)
    return tuple(out)


def parse_dns_servers(name: str, value: object, version: int) -> tuple[str, ...]:
    """Nameserver addresses of one family, kept as written (Istio copies them from resolv.conf verbatim)."""
    out = []
    for item in _items(name, value):
        try:
            addr = ipaddress.ip_address(item)
        except ValueError:
            raise _fail(name, value, f"{item!r} is not an IP address") from None
        if addr.version != version:
            raise _fail(name, value, f"{item!r} is not an IPv{version} address")
        out.append(item)
    return tuple(out)


_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"0", "f", "false", "no", "off", ""}


def parse_bool(name: str, value: object) -> bool:
    """Go's strconv.ParseBool plus yes/no/on/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _fail(name, value, "not a boolean")


def _parse_mode(name: str, value: object) -> InterceptionMode:
    if isinstance(value, InterceptionMode):
        return value
    text = str(value).strip().upper()
    try:
        return InterceptionMode(text)
    except ValueError:
        raise _fail(name, value, "interception mode must be REDIRECT or TPROXY") from None


def _parse_uint(name: str, value: object, maximum: int = 0xFFFFFFFF) -> int:
    text = str(value).strip()
    base = 16 if text.lower().startswith("0x") else 10
    try:
        number = int(text, base)
    except ValueError:
        raise _fail(name, value, "not a number") from None
    if isinstance(value, bool) or not 0 <= number <= maximum:
        raise _fail(name, value, f"out of range 0-{maximum}")
    return number


def _parse_loopback_cidr(name: str, value: object) -> ipaddress.IPv4Interface:
    """ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: an IPv4 loopback CIDR with a mask of /8 to /32."""
    cidr = value if isinstance(value, ipaddress.IPv4Interface) else _cidr(name, value, str(value).strip())
    if not isinstance(cidr, ipaddress.IPv4Interface) or not cidr.ip.is_loopback:
        raise _fail(name, value, "expected an IPv4 loopback CIDR")
    if not 8 <= cidr.network.prefixlen <= 32:
        raise _fail(name, value, "expected a mask between /8 and /32")
    return cidr


# --------------------------------------------------------------------------
# The settings
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureSettings:
    """Everything `istio-iptables` reads.  See the module doc; `from_values` takes loose forms."""

    #: `-m`: REDIRECT (nat) or TPROXY (mangle) for inbound; outbound always uses REDIRECT.
    interception_mode: InterceptionMode = InterceptionMode.REDIRECT
    #: `-p`: Envoy's outbound listener (virtualOutbound).
    proxy_port: int = 15001
    #: `-z`: Envoy's inbound listener (virtualInbound).
    inbound_capture_port: int = 15006
    #: `-e`: HBONE tunnel port, never redirected.
    inbound_tunnel_port: int = 15008
    #: `-u`: the proxy's users: their traffic is not captured again.
    proxy_uids: tuple[str, ...] = ("1337",)
    #: `-g`: the proxy's groups (istio-iptables defaults them to the uids).
    proxy_gids: tuple[str, ...] = ("1337",)
    #: `-b`: inbound ports to capture; `"*"` all, `()` none.
    inbound_ports_include: PortSelection = ()
    #: `-d`: inbound ports not captured; only used when `inbound_ports_include` is `"*"`.
    inbound_ports_exclude: tuple[int, ...] = ()
    #: `-q`: outbound ports always captured, whatever the destination.
    outbound_ports_include: tuple[int, ...] = ()
    #: `-o`: outbound ports never captured.
    outbound_ports_exclude: tuple[int, ...] = ()
    #: `-i`: outbound destinations to capture; `"*"` all, `()` none.
    outbound_ip_ranges_include: CidrSelection = ()
    #: `-x`: outbound destinations never captured.
    outbound_ip_ranges_exclude: tuple[Cidr, ...] = ()
    #: ISTIO_OUTBOUND_OWNER_GROUPS: groups whose traffic is captured; `"*"` all.
    owner_groups_include: GroupSelection = WILDCARD
    #: ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: groups whose traffic is not (only with include `"*"`).
    owner_groups_exclude: tuple[str, ...] = ()
    #: `-c`: interfaces whose traffic is not captured at all.
    exclude_interfaces: tuple[str, ...] = ()
    #: `-k`: KubeVirt interfaces whose inbound traffic is treated as outbound.
    reroute_virtual_interfaces: tuple[str, ...] = ()
    #: `--redirect-dns` (ISTIO_META_DNS_CAPTURE): send DNS to istio-agent on 15053.
    redirect_dns: bool = False
    #: `--capture-all-dns`: every port-53 packet, not only those to `dns_servers_*`.
    capture_all_dns: bool = False
    #: The pod's resolv.conf nameservers, which DNS capture is limited to.
    dns_servers_v4: tuple[str, ...] = ()
    dns_servers_v6: tuple[str, ...] = ()
    #: `--drop-invalid` (INVALID_DROP): drop conntrack INVALID packets instead of letting them reset connections.
    drop_invalid: bool = False
    #: ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: what counts as "to localhost".
    host_ipv4_loopback_cidr: ipaddress.IPv4Interface = DEFAULT_HOST_IPV4_LOOPBACK_CIDR
    #: Program ip6tables too (istio-iptables decides it from the pod's address).
    enable_ipv6: bool = False
    #: `--dual-stack` (ISTIO_DUAL_STACK): only changes how IPv6 is detected.
    dual_stack: bool = False
    #: `--iptables-trace-logging`: NFLOG rules before the interesting ones.
    trace_logging: bool = False
    #: `-t`: the mark of TPROXY'd packets.
    inbound_tproxy_mark: int = 1337
    #: `-r`: the routing table that sends marked packets to `lo`.
    inbound_tproxy_route_table: int = 133
    #: Ports the CNI plugin adds to the inbound exclusions (flavour "cni-plugin").
    cni_status_ports: tuple[int, ...] = CNI_STATUS_PORTS

    def __post_init__(self) -> None:
        _validate(self)

    # -- constructors -----------------------------------------------------

    @classmethod
    def from_values(cls, base: CaptureSettings | None = None, /, **values: object) -> CaptureSettings:
        """Settings from loose values (`"3,4"`, `"*"`, `"6000,7000,"`, `"true"`, ints, lists), over `base`.

        Raises `SettingsError` naming the field for a malformed value, or an unknown field.
        """
        return replace(base or cls(), **_normalise(values))

    @classmethod
    def from_dict(cls, data: Mapping[str, object], base: CaptureSettings | None = None) -> CaptureSettings:
        return cls.from_values(base, **dict(data))

    @classmethod
    def istio_init_defaults(cls) -> CaptureSettings:
        """What a default sidecar injection passes to `istio-init`.

        `istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020`
        """
        return cls(
            inbound_ports_include=WILDCARD,
            inbound_ports_exclude=(15090, 15021, 15020),
            outbound_ip_ranges_include=WILDCARD,
        )

    @classmethod
    def cni_plugin_defaults(cls) -> CaptureSettings:
        """The CNI plugin's defaults for a pod without traffic annotations (sidecar_redirect.go).

        Inbound `*` excluding 15020 (plus `cni_status_ports`, added by the generator), outbound `*`,
        outbound port 15020 excluded.
        """
        return cls(
            inbound_ports_include=WILDCARD,
            inbound_ports_exclude=(15020,),
            outbound_ip_ranges_include=WILDCARD,
            outbound_ports_exclude=(15020,),
        )

    # -- derived views ------------------------------------------------------

    @property
    def tproxy(self) -> bool:
        return self.interception_mode == InterceptionMode.TPROXY

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; `from_dict(to_dict())` gives the settings back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def to_flags(self) -> list[str]:
        """`istio-iptables` arguments that reproduce these settings (env-only knobs are not flags)."""
        args = [
            "-p", str(self.proxy_port),
            "-z", str(self.inbound_capture_port),
            "-e", str(self.inbound_tunnel_port),
            "-u", ",".join(self.proxy_uids),
            "-g", ",".join(self.proxy_gids),
            "-m", self.interception_mode.value,
            "-i", _selection_text(self.outbound_ip_ranges_include),
            "-x", ",".join(c.with_prefixlen for c in self.outbound_ip_ranges_exclude),
            "-b", _selection_text(self.inbound_ports_include),
            "-d", ",".join(map(str, self.inbound_ports_exclude)),
            "-t", str(self.inbound_tproxy_mark),
            "-r", str(self.inbound_tproxy_route_table),
        ]  # fmt: skip
        if self.outbound_ports_include:
            args += ["-q", ",".join(map(str, self.outbound_ports_include))]
        if self.outbound_ports_exclude:
            args += ["-o", ",".join(map(str, self.outbound_ports_exclude))]
        if self.reroute_virtual_interfaces:
            args += ["-k", ",".join(self.reroute_virtual_interfaces)]
        if self.exclude_interfaces:
            args += ["-c", ",".join(self.exclude_interfaces)]
        for flag, on in (
            ("--redirect-dns", self.redirect_dns),
            ("--capture-all-dns", self.capture_all_dns),
            ("--drop-invalid", self.drop_invalid),
            ("--dual-stack", self.dual_stack),
            ("--iptables-trace-logging", self.trace_logging),
        ):
            if on:
                args.append(flag)
        return args


def _selection_text(value: tuple[int, ...] | tuple[Cidr, ...] | str) -> str:
    if isinstance(value, str):
        return value
    return ",".join(
        v.with_prefixlen if isinstance(v, ipaddress.IPv4Interface | ipaddress.IPv6Interface) else str(v) for v in value
    )


def _jsonable(value: object) -> object:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return value.with_prefixlen
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


_PARSERS: dict[str, Any] = {
    "interception_mode": _parse_mode,
    "proxy_port": parse_port,
    "inbound_capture_port": parse_port,
    "inbound_tunnel_port": parse_port,
    "proxy_uids": parse_id_list,
    "proxy_gids": parse_id_list,
    "inbound_ports_include": parse_port_selection,
    "inbound_ports_exclude": parse_port_list,
    "outbound_ports_include": parse_port_list,
    "outbound_ports_exclude": parse_port_list,
    "outbound_ip_ranges_include": parse_cidr_selection,
    "outbound_ip_ranges_exclude": parse_cidr_list,
    "owner_groups_include": lambda n, v: (
        WILDCARD if isinstance(v, str) and v.strip() == WILDCARD else parse_id_list(n, v)
    ),
    "owner_groups_exclude": parse_id_list,
    "exclude_interfaces": parse_name_list,
    "reroute_virtual_interfaces": parse_name_list,
    "redirect_dns": parse_bool,
    "capture_all_dns": parse_bool,
    "dns_servers_v4": lambda n, v: parse_dns_servers(n, v, 4),
    "dns_servers_v6": lambda n, v: parse_dns_servers(n, v, 6),
    "drop_invalid": parse_bool,
    "host_ipv4_loopback_cidr": _parse_loopback_cidr,
    "enable_ipv6": parse_bool,
    "dual_stack": parse_bool,
    "trace_logging": parse_bool,
    "inbound_tproxy_mark": _parse_uint,
    "inbound_tproxy_route_table": _parse_uint,
    "cni_status_ports": parse_port_list,
}

#: Shorter or Istio-style spellings accepted by `from_values` (Istio's Config field names, in snake case).
_ALIASES = {
    "mode": "interception_mode",
    "inbound_interception_mode": "interception_mode",
    "proxy_uid": "proxy_uids",
    "proxy_gid": "proxy_gids",
    "owner_groups": "owner_groups_include",
    "kube_virt_interfaces": "reroute_virtual_interfaces",
    "ipv6": "enable_ipv6",
}


def _normalise(values: Mapping[str, object]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = _ALIASES.get(key, key)
        parser = _PARSERS.get(name)
        if parser is None:
            raise _fail(key, value, "unknown setting")
        if name == "proxy_uids" and not _items(name, value):
            raise _fail(key, value, "at least one proxy uid is needed")
        out[name] = parser(name, value)
    return out


def _check_tuple(name: str, value: object, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise _fail(name, value, "has the wrong type (use CaptureSettings.from_values for loose forms)")


def _validate(s: CaptureSettings) -> None:
    """Type and range checks for a directly constructed value; `from_values` has already normalised."""
    if not isinstance(s.interception_mode, InterceptionMode):
        raise _fail("interception_mode", s.interception_mode, "must be an InterceptionMode")
    for name in ("proxy_port", "inbound_capture_port", "inbound_tunnel_port"):
        parse_port(name, getattr(s, name))
    for name in ("proxy_uids", "proxy_gids", "owner_groups_exclude"):
        _check_tuple(name, getattr(s, name), str)
        parse_id_list(name, list(getattr(s, name)))
    if not s.proxy_uids:
        raise _fail("proxy_uids", "", "at least one proxy uid is needed")
    for name in ("inbound_ports_exclude", "outbound_ports_include", "outbound_ports_exclude", "cni_status_ports"):
        _check_tuple(name, getattr(s, name), int)
        for port in getattr(s, name):
            parse_port(name, port)
    if s.inbound_ports_include != WILDCARD:
        _check_tuple("inbound_ports_include", s.inbound_ports_include, int)
        for port in s.inbound_ports_include:
            parse_port("inbound_ports_include", port)
    interface_types = (ipaddress.IPv4Interface, ipaddress.IPv6Interface)
    if s.outbound_ip_ranges_include != WILDCARD:
        _check_tuple("outbound_ip_ranges_include", s.outbound_ip_ranges_include, interface_types)
    _check_tuple("outbound_ip_ranges_exclude", s.outbound_ip_ranges_exclude, interface_types)
    if s.owner_groups_include != WILDCARD:
        _check_tuple("owner_groups_include", s.owner_groups_include, str)
        parse_id_list("owner_groups_include", list(s.owner_groups_include))
        if len(s.owner_groups_include) > MAX_OWNER_GROUPS_INCLUDE:
            raise _fail(
                "owner_groups_include",
                ",".join(s.owner_groups_include),
                f"istio-iptables refuses more than {MAX_OWNER_GROUPS_INCLUDE} groups",
            )
    for name in ("exclude_interfaces", "reroute_virtual_interfaces"):
        _check_tuple(name, getattr(s, name), str)
        parse_name_list(name, list(getattr(s, name)))
    _check_tuple("dns_servers_v4", s.dns_servers_v4, str)
    parse_dns_servers("dns_servers_v4", list(s.dns_servers_v4), 4)
    _check_tuple("dns_servers_v6", s.dns_servers_v6, str)
    parse_dns_servers("dns_servers_v6", list(s.dns_servers_v6), 6)
    _parse_loopback_cidr("host_ipv4_loopback_cidr", s.host_ipv4_loopback_cidr)
    for name in ("redirect_dns", "capture_all_dns", "drop_invalid", "enable_ipv6", "dual_stack", "trace_logging"):
        if not isinstance(getattr(s, name), bool):
            raise _fail(name, getattr(s, name), "must be a bool")
    for name in ("inbound_tproxy_mark", "inbound_tproxy_route_table"):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise _fail(name, value, "must be an integer 0-4294967295")
