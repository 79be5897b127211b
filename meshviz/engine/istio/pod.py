"""The capture settings a pod was programmed with, read from what the pod shows.

* `settings_from_init_args(args, env)` - the `istio-init` container's command line
  (`istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020`),
  long and short flags as istio-iptables defines them, plus the environment variables it also reads;
* `settings_from_annotations(annotations, base, flavour=...)` - the pod's `sidecar.istio.io/*` and
  `traffic.sidecar.istio.io/*` annotations, the way the injector turns them into istio-init arguments
  (flavour "capture") or the way the istio-cni plugin reads them (flavour "cni-plugin");
* `settings_from_pod(pod_json)` - a Kubernetes Pod object: finds istio-init (or, with istio-cni, the
  sidecar status annotation), the istio-proxy container's uid/gid, capabilities and environment, the
  pod's addresses (IPv6) and DNS config.

Each returns `PodSettings`: the settings, the flavour that programs them, notes on what was inferred or
assumed, and errors as data (`SettingIssue`: the flag or annotation, the value, what is wrong - and what
Istio would do about it).  Nothing raises on bad input.

Where Istio's behaviour was read: `tools/istio-iptables/pkg/cmd/root.go` (flags, `flag.BindEnv`,
additional env names), `tools/istio-iptables/pkg/constants` (flag names, env-only variables),
`pkg/kube/inject` (the injection template's istio-init arguments, `excludeInboundPort`),
`cni/pkg/plugin/sidecar_redirect.go`, `kubernetes.go` and `plugin.go` (annotation registry, defaults,
the status ports, the proxy's uid/gid and environment, when the plugin skips a pod).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from meshviz.engine.istio.generator import GeneratedCapture, generate
from meshviz.engine.istio.settings import (
    WILDCARD,
    CaptureSettings,
    Flavour,
    SettingIssue,
    SettingsError,
    parse_bool,
    parse_port,
    split_list,
)

__all__ = [
    "ANNOTATIONS",
    "FLAGS",
    "PodSettings",
    "settings_from_annotations",
    "settings_from_init_args",
    "settings_from_pod",
]

SRC_ARGS = "istio-init args"
SRC_ENV = "istio-init env"
SRC_ANNOTATIONS = "annotations"
SRC_PROXY = "istio-proxy"
SRC_POD = "pod"


@dataclass(frozen=True)
class PodSettings:
    """The settings a pod is programmed with, how they were found, and what could not be read."""

    settings: CaptureSettings
    flavour: Flavour = "capture"
    notes: tuple[str, ...] = ()
    errors: tuple[SettingIssue, ...] = ()
    #: False when nothing is programmed at all (dry run, interceptionMode NONE, injection disabled, ...).
    applies: bool = True
    #: `--native-nftables`: the rules are nftables tables (`generate_nftables`), not iptables.
    nftables: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def generate(self) -> GeneratedCapture:
        return generate(self.settings, self.flavour)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "flavour": self.flavour,
            "notes": list(self.notes),
            "errors": [e.to_dict() for e in self.errors],
            "applies": self.applies,
            "nftables": self.nftables,
        }


class _Collector:
    """Loose values in, settings out; every malformed value becomes a SettingIssue instead of an exception."""

    def __init__(self, base: CaptureSettings):
        self.settings = base
        self.notes: list[str] = []
        self.errors: list[SettingIssue] = []
        self.applies = True
        self.nftables = False

    def set(self, field: str, value: object, name: str, source: str, consequence: str = "") -> bool:
        try:
            self.settings = CaptureSettings.from_values(self.settings, **{field: value})
        except SettingsError as e:
            message = e.issue.message + (f"; {consequence}" if consequence else "")
            self.errors.append(SettingIssue(name=name, value=str(value), message=message, source=source))
            return False
        return True

    def error(self, name: str, value: object, message: str, source: str) -> None:
        self.errors.append(SettingIssue(name=name, value=str(value), message=message, source=source))

    def result(self, flavour: Flavour) -> PodSettings:
        return PodSettings(self.settings, flavour, tuple(self.notes), tuple(self.errors), self.applies, self.nftables)


# --------------------------------------------------------------------------
# istio-iptables flags
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flag:
    long: str
    short: str | None
    field: str | None  # the CaptureSettings field, None for flags that do not change the rules
    boolean: bool = False
    env: tuple[str, ...] = ()


def _env_name(long: str) -> str:
    return long.upper().replace("-", "_")


def _flag(
    long: str,
    short: str | None,
    field: str | None,
    boolean: bool = False,
    extra_env: tuple[str, ...] = (),
    env: bool = True,
) -> _Flag:
    names = ((_env_name(long),) if env else ()) + extra_env
    return _Flag(long, short, field, boolean, names)


#: istio-iptables' flags (constants.go names, root.go shorthands); each is also read from the environment
#: under its upper-case name (pkg/flag.BindEnv), some under an additional name too.
FLAGS: tuple[_Flag, ...] = (
    _flag("envoy-port", "p", "proxy_port", env=False),
    _flag("inbound-capture-port", "z", "inbound_capture_port"),
    _flag("inbound-tunnel-port", "e", "inbound_tunnel_port"),
    _flag("proxy-uid", "u", "proxy_uids"),
    _flag("proxy-gid", "g", "proxy_gids"),
    _flag("istio-inbound-interception-mode", "m", "interception_mode", extra_env=("INBOUND_INTERCEPTION_MODE",)),
    _flag("istio-inbound-ports", "b", "inbound_ports_include"),
    _flag("istio-local-exclude-ports", "d", "inbound_ports_exclude"),
    _flag("istio-exclude-interfaces", "c", "exclude_interfaces"),
    _flag("istio-service-cidr", "i", "outbound_ip_ranges_include"),
    _flag("istio-service-exclude-cidr", "x", "outbound_ip_ranges_exclude"),
    _flag("istio-outbound-ports", "q", "outbound_ports_include"),
    _flag("istio-local-outbound-ports-exclude", "o", "outbound_ports_exclude"),
    _flag("kube-virt-interfaces", "k", "reroute_virtual_interfaces"),
    _flag("istio-inbound-tproxy-mark", "t", "inbound_tproxy_mark", extra_env=("INBOUND_TPROXY_MARK",)),
    _flag("istio-inbound-tproxy-route-table", "r", "inbound_tproxy_route_table"),
    _flag("redirect-dns", None, "redirect_dns", True, ("ISTIO_META_DNS_CAPTURE",)),
    _flag("capture-all-dns", None, "capture_all_dns", True),
    _flag("drop-invalid", None, "drop_invalid", True, ("INVALID_DROP",)),
    _flag("dual-stack", None, "dual_stack", True, ("ISTIO_DUAL_STACK", "ISTIO_AGENT_DUAL_STACK")),
    _flag("iptables-trace-logging", None, "trace_logging", True),
    # Flags that decide whether or how rules are applied, not which rules.
    _flag("dry-run", "n", None, True),
    _flag("skip-rule-apply", None, None, True),
    _flag("run-validation", None, None, True),
    _flag("cleanup-only", None, None, True),
    _flag("reconcile", None, None, True),
    _flag("force-apply", None, None, True),
    _flag("native-nftables", None, None, True),
    _flag("cni-mode", None, None, True),
    _flag("host-nsenter-exec", None, None, True),
    _flag("restore-format", "f", None, True),
    _flag("network-namespace", None, None),
    _flag("iptables-probe-port", None, None),
    _flag("probe-timeout", None, None),
    _flag("force-iptables-binary", None, None),
)
_BY_LONG = {f.long: f for f in FLAGS}
_BY_SHORT = {f.short: f for f in FLAGS if f.short}

#: Environment-only knobs (constants.go: "deliberately have no equivalent command-line flags").
ENV_ONLY: dict[str, str] = {
    "ISTIO_OUTBOUND_OWNER_GROUPS": "owner_groups_include",
    "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "owner_groups_exclude",
    "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "host_ipv4_loopback_cidr",
}

# pilot-agent's logging options (istio.io/istio/pkg/log): accepted and ignored.
_LOG_BOOL_FLAGS = frozenset({"log_as_json", "log_caller_all"})
_PROGRAMS = ("istio-iptables", "pilot-agent")


def _is_program(token: str) -> bool:
    return token.rsplit("/", 1)[-1] in _PROGRAMS


def settings_from_init_args(
    args: Sequence[str] | str,
    env: Mapping[str, str] | None = None,
    *,
    dns_servers: Iterable[str] = (),
    pod_ips: Iterable[str] = (),
    base: CaptureSettings | None = None,
) -> PodSettings:
    """Settings from `istio-init`'s arguments (a list, or one shell-quoted string) and environment.

    Flags win over environment variables, which win over istio-iptables' defaults.  `dns_servers` stands
    for the pod's resolv.conf (only used with DNS capture), `pod_ips` for its addresses (IPv6 is programmed
    when istio-iptables finds an IPv6 address on the pod).
    """
    c = _Collector(base or CaptureSettings())
    if isinstance(args, str):
        try:
            tokens = shlex.split(args)
        except ValueError as e:
            c.error("args", args, f"cannot split the command line: {e}", SRC_ARGS)
            return c.result("capture")
    else:
        tokens = list(args)
    while tokens and _is_program(tokens[0]):
        tokens.pop(0)
    if tokens and tokens[0].rsplit("/", 1)[-1] in ("istio-clean-iptables", "clean-iptables"):
        c.applies = False
        c.notes.append("istio-clean-iptables removes Istio's rules; it programs nothing")
        return c.result("capture")

    given: dict[str, tuple[str, str]] = {}  # flag long name -> (value, as written)
    for issue in _scan_flags(tokens, given, c.notes):
        c.errors.append(issue)

    env = dict(env or {})
    raw: dict[str, tuple[str, str, str]] = {}  # field -> (value, name, source)
    info: dict[str, str] = {}
    for flag in FLAGS:
        if flag.long in given:
            value, written = given[flag.long]
            name, source = (f"--{flag.long}" if written == f"--{flag.long}" else f"{written} (--{flag.long})"), SRC_ARGS
        else:
            env_name = next((n for n in flag.env if n in env), None)
            if env_name is None:
                continue
            value, name, source = env[env_name], env_name, SRC_ENV
        if flag.field is None:
            info[flag.long] = value
        else:
            raw[flag.field] = (value, name, source)
    for env_name, field in ENV_ONLY.items():
        if env_name in env:
            raw[field] = (env[env_name], env_name, SRC_ENV)

    _apply_args(c, raw)
    _flag_consequences(c, info)
    _pod_environment(c, dns_servers, pod_ips, "istio-iptables")
    return c.result("capture")


def _scan_flags(tokens: list[str], given: dict[str, tuple[str, str]], notes: list[str]) -> list[SettingIssue]:
    """pflag's parsing: `--name value`, `--name=value`, `-n value`, `-nvalue`, `-n=value`, boolean `--name`."""
    issues: list[SettingIssue] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "--":
            if tokens[i:]:
                notes.append(f"arguments after '--' are ignored by istio-iptables: {' '.join(tokens[i:])}")
            break
        if tok.startswith("--"):
            name, eq, inline = tok[2:].partition("=")
            if name.startswith("log_") or name in ("help", "vklog"):
                if not eq and name not in _LOG_BOOL_FLAGS and name != "help" and i < len(tokens):
                    i += 1
                notes.append(f"{tok.split('=')[0]}: a logging option, no effect on the rules")
                continue
            flag = _BY_LONG.get(name)
            if flag is None:
                issues.append(
                    SettingIssue(
                        tok.split("=")[0],
                        inline,
                        "unknown flag: istio-iptables exits with an error and the pod never starts",
                        SRC_ARGS,
                    )
                )
                continue
            written = f"--{name}"
        elif tok.startswith("-") and len(tok) > 1:
            letter, rest = tok[1], tok[2:]
            flag = _BY_SHORT.get(letter)
            if flag is None:
                issues.append(
                    SettingIssue(
                        tok,
                        "",
                        "unknown shorthand flag: istio-iptables exits with an error and the pod never starts",
                        SRC_ARGS,
                    )
                )
                continue
            written = f"-{letter}"
            if flag.boolean:
                eq, inline = ("=", rest[1:]) if rest.startswith("=") else ("", "")
                if rest and not rest.startswith("="):
                    tokens.insert(i, "-" + rest)  # -nf: more shorthand booleans
            else:
                eq, inline = ("=", rest[1:]) if rest.startswith("=") else (("=", rest) if rest else ("", ""))
        else:
            notes.append(f"positional argument {tok!r} is ignored by istio-iptables")
            continue
        if flag.boolean:
            given[flag.long] = (inline if eq else "true", written)
        elif eq:
            given[flag.long] = (inline, written)
        elif i < len(tokens):
            given[flag.long] = (tokens[i], written)
            i += 1
        else:
            issues.append(
                SettingIssue(written, "", "flag needs an argument: istio-iptables exits with an error", SRC_ARGS)
            )
    return issues


def _apply_args(c: _Collector, raw: Mapping[str, tuple[str, str, str]]) -> None:
    failing = "iptables-restore rejects the rules, istio-init fails and the pod never starts"
    for field, (value, name, source) in raw.items():
        text = value.strip()
        if field == "interception_mode":
            if text.upper() in ("REDIRECT", "TPROXY"):
                c.set(field, text.upper(), name, source)
            elif text:
                c.notes.append(f"{name}={value!r}: istio-iptables only tests for TPROXY, so this means REDIRECT")
            continue
        if field in ("proxy_uids", "proxy_gids") and not split_list(text):
            continue  # empty: the defaults below
        if field in ("outbound_ip_ranges_include", "outbound_ip_ranges_exclude"):
            _set_ranges(c, field, text, name, source)
            continue
        if field in ("inbound_tproxy_mark", "inbound_tproxy_route_table") and not text:
            continue
        if field in ("proxy_port", "inbound_capture_port", "inbound_tunnel_port") and not text:
            continue
        c.set(field, value, name, source, failing)
    if "proxy_uids" not in raw or not split_list(raw["proxy_uids"][0]):
        c.notes.append("proxy uid not given: istio-iptables uses the uid of user istio-proxy (1337 in Istio's images)")
        c.settings = replace(c.settings, proxy_uids=("1337",))
    if "proxy_gids" not in raw or not split_list(raw["proxy_gids"][0]):
        c.settings = replace(c.settings, proxy_gids=c.settings.proxy_uids)
        c.notes.append(f"proxy gid not given: istio-iptables uses the uid ({','.join(c.settings.proxy_uids)})")


def _set_ranges(c: _Collector, field: str, text: str, name: str, source: str) -> None:
    """istio-iptables skips CIDRs it cannot parse ("bug compatibility"); a wildcard exclusion is fatal."""
    if text == WILDCARD:
        if field == "outbound_ip_ranges_exclude":
            c.error(
                name, text, "'*' is not allowed for the excluded ranges: istio-iptables exits with an error", source
            )
            return
        c.set(field, WILDCARD, name, source)
        return
    kept = []
    for item in split_list(text):
        if not _is_cidr(item):
            c.notes.append(f"{name}: {item!r} is not a CIDR (address/length); istio-iptables skips it")
            continue
        kept.append(item)
    c.set(field, ",".join(kept), name, source)


def _is_cidr(item: str) -> bool:
    """What Go's netip.ParsePrefix accepts: an address and a prefix length (a bare address is refused)."""
    if "/" not in item:
        return False
    try:
        ipaddress.ip_interface(item)
    except ValueError:
        return False
    return True


def _flag_consequences(c: _Collector, info: Mapping[str, str]) -> None:
    def on(long: str) -> bool:
        try:
            return long in info and parse_bool(long, info[long])
        except SettingsError:
            c.error(f"--{long}", info[long], "not a boolean: istio-iptables exits with an error", SRC_ARGS)
            return False

    if on("dry-run"):
        c.applies = False
        c.notes.append("--dry-run: istio-iptables only prints the rules; nothing is programmed")
    if on("skip-rule-apply"):
        c.applies = False
        c.notes.append("--skip-rule-apply: no rules are applied (the istio-cni validation container runs like this)")
    if on("cleanup-only"):
        c.applies = False
        c.notes.append("--cleanup-only: Istio's rules are removed, none are added")
    if on("run-validation"):
        c.notes.append("--run-validation: istio-iptables checks that redirection works after applying")
    if on("native-nftables"):
        c.nftables = True
        c.notes.append(
            "--native-nftables: the same interception is programmed as nftables rules (inet istio-proxy-* tables)"
        )
    if "restore-format" in info and not on("restore-format"):
        c.notes.append("--restore-format=false: one iptables command per rule (the legacy-1.23 layout)")
    if "network-namespace" in info:
        c.notes.append(f"--network-namespace={info['network-namespace']}: rules go into that namespace")


def _pod_environment(c: _Collector, dns_servers: Iterable[str], pod_ips: Iterable[str], who: str) -> None:
    """What istio-iptables reads from the pod at run time: its addresses (IPv6) and resolv.conf (DNS)."""
    v4: list[str] = []
    v6: list[str] = []
    for server in dns_servers:
        try:
            (v4 if ipaddress.ip_address(server.strip()).version == 4 else v6).append(server.strip())
        except ValueError:
            c.error("dns_servers", server, "not an IP address", SRC_POD)
    if v4 or v6:
        c.settings = replace(c.settings, dns_servers_v4=tuple(v4), dns_servers_v6=tuple(v6))
    s = c.settings
    if s.redirect_dns and not s.capture_all_dns and not s.dns_servers_v4 and not s.dns_servers_v6:
        c.notes.append(
            f"DNS capture: {who} limits it to the pod's resolv.conf nameservers, which the pod object does not show; "
            "none were given, so DNS capture is modelled as off (pass dns_servers, usually the kube-dns Service IP)"
        )

    ips = []
    for text in pod_ips:
        try:
            ips.append(ipaddress.ip_address(text.strip()))
        except ValueError:
            c.error("podIPs", text, "not an IP address", SRC_POD)
    if not ips:
        if not s.enable_ipv6:
            c.notes.append(
                "pod addresses unknown: IPv6 rules assumed off (istio-iptables enables them for an IPv6 pod)"
            )
        return
    usable = [ip for ip in ips if not ip.is_loopback and not ip.is_link_local]
    if s.dual_stack:
        ipv6 = any(ip.version == 6 for ip in usable)
    else:
        ipv6 = bool(usable) and usable[0].version == 6
    c.settings = replace(c.settings, enable_ipv6=ipv6)
    if ipv6:
        c.notes.append("IPv6: the pod has an IPv6 address, so ip6tables rules are programmed too")
    if len(usable) > 1 and not s.dual_stack:
        c.notes.append(
            "several pod addresses without dual-stack: istio-iptables looks at the first address it finds on the "
            "interfaces; the order of status.podIPs is assumed to be the same"
        )


# --------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------

ANN_MODE = "sidecar.istio.io/interceptionMode"
ANN_INCLUDE_IPS = "traffic.sidecar.istio.io/includeOutboundIPRanges"
ANN_EXCLUDE_IPS = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
ANN_INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"
ANN_EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
ANN_INCLUDE_OUTBOUND = "traffic.sidecar.istio.io/includeOutboundPorts"
ANN_EXCLUDE_OUTBOUND = "traffic.sidecar.istio.io/excludeOutboundPorts"
ANN_KUBEVIRT = "traffic.sidecar.istio.io/kubevirtInterfaces"
ANN_REROUTE = "istio.io/reroute-virtual-interfaces"
ANN_EXCLUDE_IFACES = "traffic.sidecar.istio.io/excludeInterfaces"
ANN_STATUS_PORT = "status.sidecar.istio.io/port"
ANN_STATUS = "sidecar.istio.io/status"
ANN_INJECT = "sidecar.istio.io/inject"
ANN_PROXY_CONFIG = "proxy.istio.io/config"
LABEL_INJECT = "sidecar.istio.io/inject"
LABEL_DATAPLANE = "istio.io/dataplane-mode"

#: Annotations that change the capture, and the setting each one feeds.
ANNOTATIONS: dict[str, str] = {
    ANN_MODE: "interception_mode",
    ANN_INCLUDE_IPS: "outbound_ip_ranges_include",
    ANN_EXCLUDE_IPS: "outbound_ip_ranges_exclude",
    ANN_INCLUDE_INBOUND: "inbound_ports_include",
    ANN_EXCLUDE_INBOUND: "inbound_ports_exclude",
    ANN_INCLUDE_OUTBOUND: "outbound_ports_include",
    ANN_EXCLUDE_OUTBOUND: "outbound_ports_exclude",
    ANN_REROUTE: "reroute_virtual_interfaces",
    ANN_KUBEVIRT: "reroute_virtual_interfaces",
    ANN_EXCLUDE_IFACES: "exclude_interfaces",
    ANN_STATUS_PORT: "inbound_ports_exclude",
}

#: The ports the injection template always puts in front of `-d` (Envoy's stats and health ports).
INJECTED_EXCLUDED_PORTS = (15090, 15021)
DEFAULT_STATUS_PORT = 15020

#: Names people use that Istio does not read.
_NOT_ISTIO = {"sidecar.istio.io/statusPort": ANN_STATUS_PORT}


def settings_from_annotations(
    annotations: Mapping[str, str],
    base: CaptureSettings | None = None,
    *,
    flavour: Literal["capture", "cni-plugin"] = "capture",
    proxy_env: Mapping[str, str] | None = None,
) -> PodSettings:
    """Settings from a pod's annotations over `base` (the mesh-wide defaults).

    flavour "capture": what the sidecar injector writes into istio-init's arguments (`-d` becomes
    15090,15021, the pod's exclusions, then the status port); base defaults to `istio_init_defaults()`.
    flavour "cni-plugin": what the istio-cni plugin reads (invalid values fail the pod's sandbox; the
    status ports are added by the generator); base defaults to `cni_plugin_defaults()`.
    `proxy_env` is the istio-proxy container's environment (ISTIO_META_DNS_CAPTURE, INVALID_DROP,
    ISTIO_DUAL_STACK).
    """
    cni = flavour == "cni-plugin"
    if base is None:
        base = CaptureSettings.cni_plugin_defaults() if cni else CaptureSettings.istio_init_defaults()
    c = _Collector(base)
    consequence = (
        "the istio-cni plugin refuses the pod and its sandbox is not created"
        if cni
        else "the injector rejects it (or istio-init fails with it)"
    )
    for wrong, right in _NOT_ISTIO.items():
        if wrong in annotations:
            c.notes.append(f"{wrong} is not an Istio annotation and has no effect (Istio reads {right})")
    if ANN_PROXY_CONFIG in annotations:
        c.notes.append(
            f"{ANN_PROXY_CONFIG} is not interpreted here: if it sets interceptionMode or proxyMetadata "
            "(ISTIO_META_DNS_CAPTURE, INVALID_DROP), give them as annotations or proxy environment"
        )

    mode = annotations.get(ANN_MODE)
    if mode is not None:
        if mode.strip().upper() == "NONE" and not cni:
            c.applies = False
            c.notes.append(f"{ANN_MODE}=NONE: the injector adds no istio-init, nothing is captured")
        elif mode.strip().upper() not in ("REDIRECT", "TPROXY"):
            c.error(ANN_MODE, mode, f"interception mode must be REDIRECT or TPROXY; {consequence}", SRC_ANNOTATIONS)
        else:
            c.set("interception_mode", mode.strip().upper(), ANN_MODE, SRC_ANNOTATIONS)

    for ann in (
        ANN_INCLUDE_IPS,
        ANN_EXCLUDE_IPS,
        ANN_INCLUDE_INBOUND,
        ANN_INCLUDE_OUTBOUND,
        ANN_EXCLUDE_OUTBOUND,
        ANN_EXCLUDE_IFACES,
    ):
        if ann not in annotations:
            continue
        value = annotations[ann]
        if ann in (ANN_INCLUDE_IPS, ANN_EXCLUDE_IPS) and value.strip() != WILDCARD:
            bad = [item for item in split_list(value) if not _is_cidr(item)]
            if bad:
                c.error(ann, value, f"{bad[0]!r} is not a CIDR (address/length); {consequence}", SRC_ANNOTATIONS)
                continue
        c.set(ANNOTATIONS[ann], value, ann, SRC_ANNOTATIONS, consequence)

    reroute = ANN_REROUTE if ANN_REROUTE in annotations else ANN_KUBEVIRT if ANN_KUBEVIRT in annotations else None
    if reroute is not None:
        c.set("reroute_virtual_interfaces", annotations[reroute], reroute, SRC_ANNOTATIONS, consequence)
        if reroute == ANN_KUBEVIRT:
            c.notes.append(f"{ANN_KUBEVIRT} is deprecated in favour of {ANN_REROUTE}")

    if cni:
        if ANN_EXCLUDE_INBOUND in annotations:
            c.set(
                "inbound_ports_exclude",
                annotations[ANN_EXCLUDE_INBOUND],
                ANN_EXCLUDE_INBOUND,
                SRC_ANNOTATIONS,
                consequence,
            )
        if ANN_STATUS_PORT in annotations:
            c.notes.append(
                f"{ANN_STATUS_PORT} does not change the CNI plugin's rules: it always excludes 15020,15021,15090"
            )
    else:
        _injected_inbound_exclusions(c, annotations, base)

    _proxy_env(c, proxy_env or {}, cni)
    return c.result(flavour)


def _injected_inbound_exclusions(c: _Collector, annotations: Mapping[str, str], base: CaptureSettings) -> None:
    """The injector's `-d`: 15090,15021, then excludeInboundPort(statusPort, the pod's exclusions)."""
    standard = (*INJECTED_EXCLUDED_PORTS, DEFAULT_STATUS_PORT)
    if ANN_EXCLUDE_INBOUND in annotations:
        user_text = annotations[ANN_EXCLUDE_INBOUND]
        try:
            user = [str(p) for p in CaptureSettings.from_values(inbound_ports_exclude=user_text).inbound_ports_exclude]
        except SettingsError as e:
            c.error(ANN_EXCLUDE_INBOUND, user_text, e.issue.message + "; the injector rejects it", SRC_ANNOTATIONS)
            user = []
    else:
        user = [str(p) for p in base.inbound_ports_exclude if p not in standard]
    status = annotations.get(ANN_STATUS_PORT, str(DEFAULT_STATUS_PORT)).strip()
    if status and status != "0":
        try:
            parse_port(ANN_STATUS_PORT, status)
        except SettingsError as e:
            c.error(ANN_STATUS_PORT, status, e.issue.message + "; the injector rejects it", SRC_ANNOTATIONS)
            status = ""
    ports = [str(p) for p in INJECTED_EXCLUDED_PORTS] + user
    if status and status != "0" and status not in user:
        ports.append(status)
    c.set("inbound_ports_exclude", ",".join(ports), ANN_EXCLUDE_INBOUND, SRC_ANNOTATIONS)


def _proxy_env(c: _Collector, env: Mapping[str, str], cni: bool) -> None:
    """The proxy environment both the injector (via istio-init's env) and the CNI plugin pass on."""
    for name, field in (
        ("ISTIO_META_DNS_CAPTURE", "redirect_dns"),
        ("INVALID_DROP", "drop_invalid"),
        ("ISTIO_DUAL_STACK", "dual_stack"),
    ):
        if name not in env:
            continue
        try:
            value = parse_bool(name, env[name])
        except SettingsError:
            # Both istio-iptables and the CNI plugin log a warning and keep the default.
            c.notes.append(f"{name}={env[name]!r} is not a boolean; Istio ignores it")
            continue
        c.set(field, value, name, SRC_PROXY)
        if field == "redirect_dns" and cni:
            c.set("capture_all_dns", value, name, SRC_PROXY)
            if value:
                c.notes.append(
                    "DNS capture via the CNI plugin: every port-53 packet goes to istio-agent (capture-all-dns)"
                )


# --------------------------------------------------------------------------
# A whole pod
# --------------------------------------------------------------------------

_VERSION_TAG = re.compile(r":(?:release-)?v?(\d+)\.(\d+)")


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = spec.get(key) or []
    return [c for c in value if isinstance(c, Mapping)]


def _env_of(container: Mapping[str, Any], c: _Collector, who: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if not isinstance(item, Mapping) or "name" not in item:
            continue
        if "value" in item:
            env[str(item["name"])] = str(item["value"])
        elif "valueFrom" in item and str(item["name"]) in (
            "ISTIO_META_DNS_CAPTURE",
            "INVALID_DROP",
            "ISTIO_DUAL_STACK",
        ):
            c.notes.append(f"{who}: {item['name']} comes from valueFrom and cannot be read from the pod object")
    return env


def _command_line(container: Mapping[str, Any]) -> list[str]:
    return [str(t) for t in (container.get("command") or [])] + [str(t) for t in (container.get("args") or [])]


def _is_capture_init(container: Mapping[str, Any]) -> bool:
    line = _command_line(container)
    return any(_is_program(t) or t == "istio-iptables" for t in line) and "--skip-rule-apply" not in line


def _version(image: str) -> tuple[int, int] | None:
    m = _VERSION_TAG.search(image.rsplit("/", 1)[-1])
    return (int(m.group(1)), int(m.group(2))) if m else None


def _legacy_by_image(c: _Collector, image: str) -> bool:
    version = _version(image)
    if version is not None and version < (1, 24):
        c.notes.append(
            f"image {image}: Istio {version[0]}.{version[1]} ran one iptables command per rule; using the legacy-1.23 "
            "layout (releases before 1.23 may differ in details)"
        )
        return True
    return False


def settings_from_pod(pod: Mapping[str, Any], *, dns_servers: Iterable[str] | None = None) -> PodSettings:
    """Settings from a Kubernetes Pod object (as JSON): istio-init's arguments, or the istio-cni plugin's view.

    `dns_servers` stands for the pod's /etc/resolv.conf nameservers (used only with DNS capture; by default
    `spec.dnsConfig.nameservers` when `dnsPolicy` is None).
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    inits = _containers(spec, "initContainers")
    mains = _containers(spec, "containers")
    proxy = next((x for x in (*inits, *mains) if x.get("name") == "istio-proxy"), None)
    istio_init = next((x for x in inits if x.get("name") == "istio-init"), None)
    if istio_init is None:
        istio_init = next((x for x in inits if x.get("name") != "istio-validation" and _is_capture_init(x)), None)

    c = _Collector(CaptureSettings())
    pod_ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if isinstance(p, Mapping) and p.get("ip")]
    if not pod_ips and status.get("podIP"):
        pod_ips = [str(status["podIP"])]
    servers = list(dns_servers) if dns_servers is not None else _resolv_conf_servers(spec, c)

    if proxy is None:
        if labels.get(LABEL_DATAPLANE) == "ambient":
            c.applies = False
            c.error(
                LABEL_DATAPLANE,
                "ambient",
                "an ambient pod: ztunnel's in-pod rules are not what this generator reproduces",
                SRC_POD,
            )
        else:
            c.applies = False
            c.error("istio-proxy", "", "no istio-proxy container: not an Istio sidecar pod", SRC_POD)
        return c.result("capture")

    proxy_env = _env_of(proxy, c, "istio-proxy")
    image = str(proxy.get("image") or "")

    if istio_init is not None:
        init_env = _env_of(istio_init, c, "istio-init")
        r = settings_from_init_args(_command_line(istio_init), init_env, dns_servers=servers, pod_ips=pod_ips)
        flavour: Flavour = "capture"
        c.settings, c.applies = r.settings, r.applies
        c.notes.extend(r.notes)
        c.errors.extend(r.errors)
        c.notes.insert(0, "read from the istio-init container's arguments (rules programmed by istio-iptables)")
        if _legacy_by_image(c, str(istio_init.get("image") or image)):
            flavour = "legacy-1.23"
        _check_init_privileges(c, istio_init)
        _annotation_drift(c, annotations)
    else:
        if ANN_STATUS not in annotations:
            c.applies = False
            c.error(
                ANN_STATUS,
                "",
                "no istio-init container and no sidecar status annotation: nothing programs the capture",
                SRC_POD,
            )
            return c.result("capture")
        flavour = "cni-plugin"
        r = settings_from_annotations(annotations, flavour="cni-plugin", proxy_env=proxy_env)
        c.settings, c.applies = r.settings, r.applies
        c.notes.append("no istio-init container: the istio-cni plugin programs the capture from the annotations")
        c.notes.extend(r.notes)
        c.errors.extend(r.errors)
        _cni_skips(c, labels, annotations, proxy, proxy_env)
        _cni_proxy_ids(c, proxy)
        if _legacy_by_image(c, image):
            flavour = "legacy-1.23"
        _pod_environment(c, servers, pod_ips, "the istio-cni plugin")

    _check_proxy(c, proxy, spec)
    return c.result(flavour)


def _resolv_conf_servers(spec: Mapping[str, Any], c: _Collector) -> list[str]:
    config = spec.get("dnsConfig") or {}
    servers = [str(s) for s in config.get("nameservers") or []]
    if servers and spec.get("dnsPolicy") == "None":
        c.notes.append("DNS servers taken from spec.dnsConfig.nameservers (dnsPolicy None)")
        return servers
    return []


def _cni_skips(
    c: _Collector,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    proxy: Mapping[str, Any],
    env: Mapping[str, str],
) -> None:
    """The cases where the CNI plugin leaves the pod alone (plugin.go)."""
    try:
        if "DISABLE_ENVOY" in env and parse_bool("DISABLE_ENVOY", env["DISABLE_ENVOY"]):
            c.applies = False
            c.notes.append("DISABLE_ENVOY is set on istio-proxy: the CNI plugin skips the pod")
    except SettingsError:
        pass
    args = [str(a) for a in proxy.get("args") or []]
    if len(args) >= 2 and args[0] == "proxy" and args[1] != "sidecar":
        c.applies = False
        c.notes.append(f"istio-proxy runs as {args[1]!r}, not a sidecar: the CNI plugin skips the pod")
    inject = labels.get(LABEL_INJECT, annotations.get(ANN_INJECT, ""))
    try:
        if inject and not parse_bool(ANN_INJECT, inject):
            c.applies = False
            c.notes.append(f"{ANN_INJECT}={inject}: the CNI plugin skips the pod")
    except SettingsError:
        pass


def _security_context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    sc = container.get("securityContext")
    return sc if isinstance(sc, Mapping) else {}


def _cni_proxy_ids(c: _Collector, proxy: Mapping[str, Any]) -> None:
    """The plugin uses istio-proxy's own runAsUser/runAsGroup (not the pod's), 1337 when unset or 0."""
    sc = _security_context(proxy)
    for key, field in (("runAsUser", "proxy_uids"), ("runAsGroup", "proxy_gids")):
        value = sc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value != 0:
            c.set(field, str(value), f"istio-proxy securityContext.{key}", SRC_PROXY)
            c.notes.append(
                f"CNI plugin: {field[:-1].replace('_', ' ')} {value} from istio-proxy's securityContext.{key}"
            )
        elif field == "proxy_uids":
            c.settings = replace(c.settings, proxy_uids=("1337",))
        else:
            c.settings = replace(c.settings, proxy_gids=("1337",))


def _check_init_privileges(c: _Collector, init: Mapping[str, Any]) -> None:
    sc = _security_context(init)
    caps = sc.get("capabilities") or {}
    added = {str(x).upper().removeprefix("CAP_") for x in caps.get("add") or []}
    if not sc.get("privileged") and "NET_ADMIN" not in added:
        c.notes.append("istio-init has no NET_ADMIN capability: iptables-restore would fail and the pod never start")


def _annotation_drift(c: _Collector, annotations: Mapping[str, str]) -> None:
    changed = [a for a in ANNOTATIONS if a in annotations]
    if changed:
        c.notes.append(
            "annotations (" + ", ".join(changed) + ") were turned into istio-init's arguments at injection; "
            "the arguments are what ran, so they are used"
        )


def _effective_id(container: Mapping[str, Any], spec: Mapping[str, Any], key: str) -> int | None:
    for sc in (_security_context(container), spec.get("securityContext") or {}):
        value = sc.get(key) if isinstance(sc, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _check_proxy(c: _Collector, proxy: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """Does the proxy's identity match what the rules exempt, and can it do TPROXY?"""
    s = c.settings
    uid = _effective_id(proxy, spec, "runAsUser")
    gid = _effective_id(proxy, spec, "runAsGroup")
    if uid is not None or gid is not None:
        uid_ok = uid is not None and str(uid) in s.proxy_uids
        gid_ok = gid is not None and str(gid) in s.proxy_gids
        who = f"istio-proxy runs as uid {uid if uid is not None else '?'} gid {gid if gid is not None else '?'}"
        if not uid_ok and not gid_ok:
            c.notes.append(
                f"{who}, which the rules do not exempt (uids {','.join(s.proxy_uids)}, gids {','.join(s.proxy_gids)}): "
                "Envoy's own connections would be captured again (a redirect loop)"
            )
        elif not uid_ok:
            c.notes.append(f"{who}: only the --gid-owner rules exempt Envoy's own traffic")
    sc = _security_context(proxy)
    added = {str(x).upper().removeprefix("CAP_") for x in (sc.get("capabilities") or {}).get("add") or []}
    if s.tproxy and not sc.get("privileged") and "NET_ADMIN" not in added:
        c.notes.append(
            "TPROXY mode but istio-proxy has no NET_ADMIN: Envoy cannot set IP_TRANSPARENT on its inbound listener, "
            "so TPROXY'd connections find no socket and are dropped"
        )
