"""Reading the capture container's log: its marked sections split into evidence, each part checked (a listing the
parser refuses is refused by name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshviz.collect.capture import MARKER
from meshviz.collect.errors import CollectError
from meshviz.collect.run import _first_error
from meshviz.engine.api import (
    ParseError,
    parse_ip_routes,
    parse_ip_rules,
    parse_iptables,
    parse_nftables,
    parse_sysctls,
)


@dataclass(frozen=True)
class _Capture:
    iptables: str
    ip_rule: str
    ip_route: str
    sysctl: str
    container: str = ""  # the capture container's name ("" when reconstructed)
    image: str = ""
    config_dump: str | None = None  # read by the capture container (only when asked and it worked)
    dump_tool: str = ""
    dump_error: str = ""  # why the capture container has no dump (when it was asked for one)
    nftables: str = ""  # `nft list ruleset` (when the capture image has nft)


@dataclass(frozen=True)
class _Log:
    parts: dict[str, str]  # part -> text (without the marker lines)
    codes: dict[str, str]  # part -> exit status, as printed
    ended: bool


def _read_log(log: str) -> _Log:
    parts: dict[str, list[str]] = {}
    codes: dict[str, str] = {}
    current: str | None = None
    ended = False
    for line in log.splitlines():
        if line.startswith(MARKER):
            tag = line[len(MARKER) :].strip()
            if tag.startswith("rc "):
                _, part, code = ([*tag.split(" ", 2), "", ""])[:3]
                codes[part] = code.strip()
                current = None
            elif tag == "end":
                ended = True
                current = None
            else:
                current = tag
                parts[current] = []
            continue
        if current is not None:
            parts[current].append(line)
    return _Log({k: "\n".join(v).strip("\n") for k, v in parts.items()}, codes, ended)


def split_capture(log: str, ipv6: bool = False) -> dict[str, str]:
    """The capture container's log split into parts (`iptables-save`, `ip-rule`, `ip-route`, `sysctl`,
    `ip6tables-save`); raises CollectError("bad_output") for a missing part, a failed command, or an
    empty part.  (A `config_dump` part is read separately: see `split_config_dump`.)"""
    step = "netfilter"
    read = _read_log(log)
    wanted = ["iptables-save", "ip-rule", "ip-route", "sysctl"] + (["ip6tables-save"] if ipv6 else [])
    if not read.ended:
        raise CollectError("bad_output", step, "the capture log is incomplete (no end marker): the output was cut off")
    out: dict[str, str] = {}
    for part in wanted:
        if part not in read.parts:
            raise CollectError("bad_output", step, f"the capture log has no {part} part")
        text = read.parts[part]
        code = read.codes.get(part, "?")
        if code != "0":
            raise CollectError(
                "bad_output", step, f"{part} failed in the capture container (exit status {code}): {text[-300:]!r}"
            )
        if not text.strip():
            raise CollectError("bad_output", step, f"{part} printed nothing")
        out[part] = text + "\n"
    if read.codes.get("nft-ruleset") == "0" and read.parts.get("nft-ruleset", "").strip():
        out["nft-ruleset"] = read.parts["nft-ruleset"] + "\n"
    return out


def split_config_dump(log: str) -> tuple[str | None, str, str]:
    """The config dump the capture script read (`capture_script(config_dump=True)`):
    (dump text or None, the tool that read it, why there is no dump)."""
    read = _read_log(log)
    tool = read.parts.get("config_dump-tool", "").strip() or "?"
    if "config_dump" not in read.parts:
        return None, tool, "the capture log has no config_dump part (cut off?)"
    code = read.codes.get("config_dump", "?")
    stderr = read.parts.get("config_dump-stderr", "").strip()
    last = stderr.splitlines()[-1][:300] if stderr else ""
    if code != "0":
        return None, tool, f"{tool} failed (exit status {code}){f': {last}' if last else ''}"
    text = read.parts["config_dump"]
    if not text.strip():
        return None, tool, f"{tool} printed nothing{f': {last}' if last else ''}"
    return text + "\n", tool, ""


def _validate_capture(parts: Mapping[str, str]) -> _Capture:
    step = "netfilter"
    iptables = parts["iptables-save"] + parts.get("ip6tables-save", "")
    ipt = parse_iptables(iptables, source="iptables-save")
    if ipt.errors:
        raise CollectError("bad_output", step, f"iptables-save output does not parse: {_first_error(ipt.errors)}")
    nft = parse_nftables(parts.get("nft-ruleset", ""), source="nft list ruleset")
    if nft.errors:
        raise CollectError("bad_output", step, f"nft list ruleset does not parse: {_first_error(nft.errors)}")
    if not any(ch.rules for rs in ipt.rulesets for t in rs.tables for ch in t.chains) and not nft.ruleset.rule_count():
        raise CollectError(
            "bad_output", step, "iptables-save and nft list ruleset show no rules at all: Istio's capture is not there"
        )
    checks: list[tuple[str, str, tuple[ParseError, ...]]] = [
        ("ip rule", parts["ip-rule"], parse_ip_rules(parts["ip-rule"], source="ip rule").errors),
        ("ip route", parts["ip-route"], parse_ip_routes(parts["ip-route"], source="ip route").errors),
        ("sysctl", parts["sysctl"], parse_sysctls(parts["sysctl"], source="sysctl").errors),
    ]
    for what, _text, errors in checks:
        if errors:
            raise CollectError("bad_output", step, f"{what} output does not parse: {_first_error(errors)}")
    return _Capture(
        iptables, parts["ip-rule"], parts["ip-route"], parts["sysctl"], nftables=parts.get("nft-ruleset", "")
    )


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
