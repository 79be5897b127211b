"""Parser for sysctl values as people paste them.

Accepted, one setting a line:

* `sysctl -a` output: `net.ipv4.ip_forward = 1`
* `key=value` (sysctl.conf, `sysctl -w key=value`, `sysctl key=value`)
* `/proc/sys/net/ipv4/ip_forward:1` (`grep . /proc/sys/...`) and
  `/proc/sys/net/ipv4/ip_forward 1`
* `echo 1 > /proc/sys/net/ipv4/ip_forward`
* comments starting with `#` or `;`, blank lines, transcript prompt lines
  such as `$ sysctl -a | grep rp_filter`.

Keys are normalised to the dotted form.  A device name with dots
(`eth0.100`) keeps its dots: `net.ipv4.conf.eth0.100.rp_filter`, which is
what `Sysctls.conf("eth0.100", "rp_filter")` asks for (sysctl's own dotted
form writes that device as `eth0/100`; both spellings are accepted).

Every setting is kept; keys the simulation does not use produce a warning,
values of keys it does use must be integers (else an error).  When a key
appears twice the later value wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.routing.model import Sysctls

__all__ = ["MODELLED_CONF_NAMES", "SysctlParseResult", "is_modelled", "normalise_key", "parse_sysctls"]


@dataclass(frozen=True)
class SysctlParseResult:
    sysctls: Sysctls
    errors: tuple[ParseError, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()


#: Per-device IPv4 settings (`net.ipv4.conf.<dev|all|default>.<name>`) the routing simulation reads.
MODELLED_CONF_NAMES = frozenset(
    {
        "route_localnet",
        "rp_filter",
        "src_valid_mark",
        "accept_local",
        "forwarding",
        "send_redirects",
    }
)
_MODELLED_KEYS = frozenset(
    {
        "net.ipv4.ip_forward",
        "net.ipv4.ip_nonlocal_bind",
        "net.ipv6.ip_nonlocal_bind",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_fwmark_accept",
    }
)
_MODELLED_V6_CONF = frozenset({"forwarding"})
# Keys whose value is not a single integer.
_NON_INTEGER = frozenset({"net.ipv4.ip_local_port_range"})

_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-/:@+]+$")
_PROMPT_RE = re.compile(r"^\s*(?:[\w.-]+@[\w.-]+(?::\S*?)?\s*)?[$%>]\s")
_SYSCTL_MSG_RE = re.compile(r"^\s*sysctl: ")
_MAX_NET_KEY_WARNINGS = 50


def normalise_key(key: str) -> str:
    """`/proc/sys/net/ipv4/conf/eth0.100/rp_filter` or `net.ipv4.conf.eth0/100.rp_filter`
    -> `net.ipv4.conf.eth0.100.rp_filter`."""
    k = key.strip()
    if k.startswith("/proc/sys/"):
        return ".".join(p for p in k[len("/proc/sys/") :].split("/") if p)
    if "/" in k:
        # sysctl's dotted form spells a dot inside a component as `/`.
        return k.replace("/", ".")
    return k


def is_modelled(key: str) -> bool:
    if key in _MODELLED_KEYS:
        return True
    parts = key.split(".")
    if len(parts) >= 5 and parts[0] == "net" and parts[2] == "conf":
        name = parts[-1]
        if parts[1] == "ipv4":
            return name in MODELLED_CONF_NAMES
        if parts[1] == "ipv6":
            return name in _MODELLED_V6_CONF
    return False


def parse_sysctls(text: str, source: str = "<sysctl>") -> SysctlParseResult:
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    values: dict[str, str] = {}
    unmodelled_other: list[str] = []
    net_warnings = 0

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if _PROMPT_RE.match(raw) or line.startswith("$ "):
            continue  # a transcript prompt: `$ sysctl -a | grep rp_filter`
        if _SYSCTL_MSG_RE.match(line):
            warnings.append(ParseWarning(source, lineno, line, "sysctl's own message skipped"))
            continue
        parsed = _split_line(line)
        if isinstance(parsed, _Bad):
            errors.append(ParseError(source, lineno, parsed.column, line, parsed.message))
            continue
        key_text, value, key_col = parsed
        key = normalise_key(key_text)
        if not _KEY_RE.match(key) or "." not in key:
            errors.append(ParseError(source, lineno, key_col, line, f"not a sysctl key: {key_text!r}"))
            continue
        value = " ".join(value.split())
        if is_modelled(key):
            if key not in _NON_INTEGER and not re.fullmatch(r"-?\d+", value):
                col = line.rfind(value.split()[0]) + 1 if value else len(line) + 1
                if not value:
                    errors.append(ParseError(source, lineno, col, line, f"missing value for {key}"))
                    continue
                errors.append(ParseError(source, lineno, col, line, f"{key} needs an integer value, got {value!r}"))
                continue
        elif key.startswith("net."):
            if net_warnings < _MAX_NET_KEY_WARNINGS:
                warnings.append(ParseWarning(source, lineno, line, f"{key} is kept but not used by the simulation"))
            net_warnings += 1
        else:
            unmodelled_other.append(key)
        values.pop(key, None)
        values[key] = value

    if net_warnings > _MAX_NET_KEY_WARNINGS:
        warnings.append(
            ParseWarning(
                source,
                0,
                "",
                f"{net_warnings - _MAX_NET_KEY_WARNINGS} more net.* keys are kept but not used by the simulation",
            )
        )
    if unmodelled_other:
        sample = ", ".join(unmodelled_other[:3])
        warnings.append(
            ParseWarning(
                source,
                0,
                "",
                f"{len(unmodelled_other)} non-network keys are kept but not used by the simulation (e.g. {sample})",
            )
        )
    return SysctlParseResult(
        sysctls=Sysctls(values=tuple(values.items())),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class _Bad:
    column: int
    message: str


def _split_line(line: str) -> tuple[str, str, int] | _Bad:
    """(key, value, key column) or what is wrong."""
    # `sysctl -w key=value`, `sudo sysctl key=value`
    m = re.match(r"^(?:sudo\s+)?sysctl(?:\s+-[a-zA-Z]+)*\s+(.*)$", line)
    if m:
        rest = m.group(1)
        if "=" not in rest:
            return _Bad(m.start(1) + 1, "`sysctl KEY` without a value")
        key, _, value = rest.partition("=")
        return (key.strip(), value.strip(), m.start(1) + 1)
    # `echo 1 > /proc/sys/...`
    m = re.match(r"^(?:sudo\s+)?echo\s+(?:-n\s+)?(['\"]?)(.*?)\1\s*>\s*(/proc/sys/\S+)$", line)
    if m:
        return (m.group(3), m.group(2), m.start(3) + 1)
    if line.startswith("/proc/sys/"):
        m = re.match(r"^(/proc/sys/[^\s:=]+)\s*[:=\s]\s*(.*)$", line)
        if m is None:
            return _Bad(len(line) + 1, "a /proc/sys path needs a value (`path:value` or `path value`)")
        return (m.group(1), m.group(2), 1)
    if "=" in line:
        key, _, value = line.partition("=")
        if not key.strip():
            return _Bad(1, "missing key before `=`")
        # `sysctl -a` prints empty values (`net.ipv4.ip_local_reserved_ports =`);
        # a key the simulation reads must still hold an integer (checked later).
        return (key.strip(), value.strip(), 1)
    if ":" in line:
        key, _, value = line.partition(":")
        if key.strip() and " " not in key.strip() and value.strip():
            return (key.strip(), value.strip(), 1)
    return _Bad(1, "expected `key = value`, `key=value` or `/proc/sys/...:value`")
