"""istio-iptables / pilot-agent istio-iptables arguments and environment, read as istio-init reads them."""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from meshviz.engine.istio.pod_settings import SRC_ARGS, SRC_ENV, SRC_POD, PodSettings, _Collector
from meshviz.engine.istio.settings import (
    WILDCARD,
    CaptureSettings,
    SettingIssue,
    SettingsError,
    parse_bool,
    split_list,
)

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
