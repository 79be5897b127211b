"""`python -m meshviz.engine generate`: print what Istio programs for given settings.

    generate [--args "ISTIO-IPTABLES ARGS"] [--env K=V]... [--set FIELD=VALUE]... [--pod-ip IP]...
             [--dns-server IP]... [--flavour capture|cni-plugin|legacy-1.23] [--nftables] --format text|json
    generate --ambient --nftables [--set FIELD=VALUE]... [--host --kubelet-uid N] --format text|json

Sidecar settings come from istio-init's arguments and environment (`settings_from_init_args`), then
`--set` overrides single `CaptureSettings` fields (`--set inbound_ports_include='*'`); `--native-nftables`
in the arguments selects nftables like `--nftables`.  Ambient settings are `AmbientSettings` fields.

Text output is ready to apply: iptables-restore payloads (per family) or the `nft -f` script, followed by
the `ip` commands as comments.  Exit status 2 when a setting is malformed (each named on stderr), 1 on a
usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from meshviz.engine.core.model import Family
from meshviz.engine.istio.generator import generate
from meshviz.engine.istio.init_args import settings_from_init_args
from meshviz.engine.istio.nft_ambient import AmbientSettings, generate_ambient_host, generate_ambient_inpod
from meshviz.engine.istio.nft_generator import GeneratedNftables, generate_nftables
from meshviz.engine.istio.settings import FLAVOURS, CaptureSettings, SettingIssue, SettingsError

__all__ = ["add_generate_parser", "cmd_generate"]


def add_generate_parser(sub: Any) -> None:
    """Register the `generate` subcommand on the engine CLI's subparsers."""
    gp = sub.add_parser("generate", help="print the iptables or nftables rules Istio programs for given settings")
    gp.add_argument("--args", default="", help="istio-init's arguments, as one shell-quoted string")
    gp.add_argument("--env", action="append", default=[], help="istio-init environment K=V; repeat")
    gp.add_argument("--set", action="append", default=[], help="a settings field FIELD=VALUE; repeat")
    gp.add_argument("--pod-ip", action="append", default=[], help="the pod's addresses (IPv6 enables ip6 rules)")
    gp.add_argument("--dns-server", action="append", default=[], help="the pod's resolv.conf nameservers")
    gp.add_argument("--flavour", choices=FLAVOURS, default="capture")
    gp.add_argument("--nftables", action="store_true", help="Istio's native nftables rules instead of iptables")
    gp.add_argument("--ambient", action="store_true", help="ambient in-pod rules (istio-cni node agent; nftables)")
    gp.add_argument("--host", action="store_true", help="with --ambient: the node's probe SNAT rule instead")
    gp.add_argument("--kubelet-uid", default="0", help="with --ambient --host: kubelet's uid")
    gp.add_argument("--format", choices=("json", "text"), default="text")
    gp.set_defaults(func=cmd_generate)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _fail(issues: list[SettingIssue], fmt: str) -> int:
    if fmt == "json":
        print(json.dumps({"errors": [i.to_dict() for i in issues]}, indent=2))
    for issue in issues:
        print(f"error: {issue}", file=sys.stderr)
    return 2


def _comments(lines: tuple[str, ...]) -> str:
    return "".join(f"# {line}\n" for line in lines)


def _ambient(args: argparse.Namespace) -> int:
    if not args.nftables:
        raise ValueError("--ambient is generated as nftables only: add --nftables")
    try:
        settings = AmbientSettings.from_values(**_pairs(args.set, "--set"))
        made = generate_ambient_host(settings, args.kubelet_uid) if args.host else generate_ambient_inpod(settings)
    except SettingsError as e:
        return _fail([e.issue], args.format)
    ip = tuple(f"ip {a}" for a in (*made.ip_rule, *made.ip_route))
    if args.format == "json":
        out = {"backend": "nftables", "mode": "ambient", "where": made.where, "script": made.script, "ip": list(ip)}
        print(json.dumps(out, indent=2))
    else:
        sys.stdout.write(made.script + _comments(ip))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    if args.ambient:
        return _ambient(args)
    pod = settings_from_init_args(
        args.args, _pairs(args.env, "--env"), dns_servers=args.dns_server, pod_ips=args.pod_ip
    )
    issues = list(pod.errors)
    settings = pod.settings
    for field, value in _pairs(args.set, "--set").items():
        try:
            settings = CaptureSettings.from_values(settings, **{field: value})
        except SettingsError as e:
            issues.append(e.issue)
    if issues:
        return _fail(issues, args.format)
    try:
        if args.nftables or pod.nftables:
            return _print_nftables(generate_nftables(settings, args.flavour), pod.notes, args.format)
    except SettingsError as e:
        return _fail([e.issue], args.format)
    ipt = generate(settings, args.flavour)
    ip_lines = tuple(f"ip {a}" for a in (*ipt.ip_addr, *ipt.ip_rule, *ipt.ip_route))
    notes = (*pod.notes, *ipt.notes)
    if args.format == "json":
        out = {
            "backend": "iptables",
            "flavour": ipt.flavour,
            "settings": ipt.settings.to_dict(),
            "text": {fam.value: ipt.text(fam) for fam in ipt.families},
            "ip": list(ip_lines),
            "notes": list(notes),
        }
        print(json.dumps(out, indent=2))
        return 0
    for fam in ipt.families:
        sys.stdout.write(f"# {'ip6tables' if fam == Family.IPV6 else 'iptables'}\n{ipt.text(fam)}")
    sys.stdout.write(_comments(ip_lines) + _comments(tuple(f"note: {n}" for n in notes)))
    return 0


def _print_nftables(nft: GeneratedNftables, pod_notes: tuple[str, ...], fmt: str) -> int:
    ip_lines = tuple(f"ip {a}" for a in (*nft.ip_addr, *nft.ip_rule, *nft.ip_route))
    notes = (*pod_notes, *nft.notes)
    if fmt == "json":
        out = {
            "backend": "nftables",
            "flavour": nft.flavour,
            "settings": nft.settings.to_dict(),
            "script": nft.script,
            "ip": list(ip_lines),
            "notes": list(notes),
            "problems": list(nft.problems),
        }
        print(json.dumps(out, indent=2))
        return 0
    sys.stdout.write(nft.script + _comments(ip_lines) + _comments(tuple(f"note: {n}" for n in notes)))
    sys.stdout.write(_comments(tuple(f"problem: {p}" for p in nft.problems)))
    return 0
