"""Command line: a stable contract used by tests and tools.

    python -m meshviz.engine parse F [--kind iptables|nftables|ip-rule|ip-route|sysctl|envoy] --format json|summary
    python -m meshviz.engine trace --iptables F [--ip-rule F] [--ip-route F] [--sysctl F]
        --src IP[:PORT] --dst IP:PORT [--in-iface eth0 | --local-uid N --local-gid N]
        [--proto tcp] [--pod-ip IP] [--mark N] [--transparent] [--tcp-flags SYN]
        [--listen [ADDR:]PORT[,transparent][,uid=N][,gid=N][,mark=N]]... --format json|text

    python -m meshviz.engine story --iptables F [--ip-rule F] [--ip-route F] [--sysctl F] [--envoy F]
        --pod-ip IP [--proxy-uid N] [--proxy-gid N] --format json|text
        ( --client IP[:PORT] --port N | --direction outbound --app-uid N --app-gid N --dst IP:PORT )

    python -m meshviz.engine story --bundle meshviz-NS-POD.tar.gz [the flags above override it] ...
        (a collect.sh bundle: evidence, pod IP, proxy uid/gid, app ports, labels from it)
    --envoy may be given several times: `istioctl proxy-config listener|cluster|route|all -o json` outputs
    are merged into one config dump

    python -m meshviz.engine fix <the same inputs as story> --goal preserve-client-ip --format json|text
    python -m meshviz.engine compare <the same inputs as story> --format json|text
    python -m meshviz.engine generate [--args "ISTIO-IPTABLES ARGS"] [--set FIELD=VALUE]... [--nftables]
        [--flavour capture|cni-plugin|legacy-1.23] | --ambient --nftables [--host]   (see istio/cli_generate.py)

Exit status: 0 on success, 2 when an input has errors (they are printed with
file, line and column), 1 on a usage error.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshviz.engine.evidence.kinds import EVIDENCE_KINDS

if TYPE_CHECKING:
    from meshviz.engine.core.errors import ParseError
    from meshviz.engine.core.model import Socket

# Each command imports what it needs when it runs: `parse` loads the parsers only, not the simulator, the story and
# Envoy's model (start-up is part of every command's time).


class _Given(str):
    """Evidence already in memory (a bundle member, merged Envoy inputs): the str is its name, `.text` the text."""

    text: str

    def __new__(cls, name: str, text: str) -> _Given:
        obj = super().__new__(cls, name)
        obj.text = text
        return obj

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]  # copies keep the text
        return (str(self), self.text)


def _read(path: str) -> str:
    if isinstance(path, _Given):
        return path.text
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8", errors="replace")


def _print_errors(errors: Sequence[ParseError], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps({"errors": [e.to_dict() for e in errors]}, indent=2))
    for e in errors:
        print(str(e), file=sys.stderr)


def cmd_parse(args: argparse.Namespace) -> int:
    if args.kind == "envoy" and args.format == "summary":  # before the other parsers' imports
        return _envoy_summary(args.file)
    if (
        args.kind == "iptables"
        and args.format == "summary"
        and not isinstance(args.file, _Given)
        and os.path.isfile(args.file)  # a regular file: it can be read again (not a pipe such as `<(iptables-save)`)
    ):
        return _iptables_summary(args.file, strict=not args.lenient)
    source = args.file
    out: dict[str, Any]
    text = _read(args.file)
    if args.kind == "iptables":
        from meshviz.engine.netfilter.parser import parse_iptables
        from meshviz.engine.netfilter.serialize import parse_summary, ruleset_to_dict

        r = parse_iptables(text, source=source, strict=not args.lenient)
        if r.errors:
            _print_errors(r.errors, args.format)
            return 2
        if args.format == "summary":
            out = parse_summary(r)
        else:
            out = {
                "format": r.format,
                "rulesets": [ruleset_to_dict(rs) for rs in r.rulesets],
                "warnings": [w.to_dict() for w in r.warnings],
            }
    elif args.kind == "nftables":
        from meshviz.engine.nftables.parser import parse_nftables
        from meshviz.engine.nftables.serialize import nft_summary, nft_to_dict

        nr = parse_nftables(text, source=source)
        if nr.errors:
            _print_errors(nr.errors, args.format)
            return 2
        out = nft_summary(nr) if args.format == "summary" else nft_to_dict(nr)
    elif args.kind == "envoy":
        from meshviz.engine.envoy import summary
        from meshviz.engine.envoy.parser import parse_config_dump

        er = parse_config_dump(text, source=source)
        if er.errors:
            _print_errors(er.errors, args.format)
            return 2
        out = summary(er.config)
        out["warnings"] = [w.to_dict() for w in er.warnings]
    elif args.kind == "ip-rule":
        from meshviz.engine.routing.ip_rule import parse_ip_rules

        rr = parse_ip_rules(text, source=source)
        if rr.errors:
            _print_errors(rr.errors, args.format)
            return 2
        out = {"rules": len(rr.rules), "warnings": [w.to_dict() for w in rr.warnings]}
        if args.format == "json":
            out["rules"] = [_plain(r) for r in rr.rules]
    elif args.kind == "ip-route":
        from meshviz.engine.routing.ip_route import parse_ip_routes

        rt = parse_ip_routes(text, source=source)
        if rt.errors:
            _print_errors(rt.errors, args.format)
            return 2
        out = {"routes": len(rt.routes), "warnings": [w.to_dict() for w in rt.warnings]}
        if args.format == "json":
            out["routes"] = [_plain(r) for r in rt.routes]
    else:
        from meshviz.engine.routing.sysctl import parse_sysctls

        sr = parse_sysctls(text, source=source)
        if sr.errors:
            _print_errors(sr.errors, args.format)
            return 2
        out = {"sysctls": dict(sr.sysctls.values), "warnings": [w.to_dict() for w in sr.warnings]}
    if args.format == "summary" and args.kind in ("iptables", "envoy", "nftables"):
        for k, v in out.items():
            print(f"{k}: {v}")
    else:
        print(json.dumps(out, indent=2, default=str))
    return 0


def _iptables_summary(path: str, strict: bool) -> int:
    """`parse --kind iptables --format summary` of a file: read a block at a time (`core.textfile`), so that the
    fast path holds its index of the rules and not the whole text; the full parser (any text the fast path does
    not read) gets the whole text."""
    from meshviz.engine.core.textfile import SourceChanged, TextFile
    from meshviz.engine.netfilter.parser import parse_iptables_pieces
    from meshviz.engine.netfilter.serialize import parse_summary

    f = TextFile(path)
    try:
        r = parse_iptables_pieces(f.pieces(), f.text, source=path, strict=strict)
    except SourceChanged as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if r.errors:
        _print_errors(r.errors, "summary")
        return 2
    for k, v in parse_summary(r).items():
        print(f"{k}: {v}")
    return 0


def _envoy_summary(path: str) -> int:
    """`parse --kind envoy --format summary`: the dump indexed (`envoy.lazy`), its listeners and clusters not built.

    The index checks the JSON and the dump's envelope and redacts every secret; what is inside the listeners and
    clusters is checked when they are built (`--format json`, a story, an upload), so the warnings are counted only
    when the index had to parse the dump whole."""
    from meshviz.engine.envoy.lazy import index_config_dump

    data: bytes | str
    if isinstance(path, _Given):
        data = path.text
    elif path == "-":
        data = sys.stdin.buffer.read()
    else:
        data = Path(path).read_bytes()
    index = index_config_dump(data, source=path)
    data = b""
    if index.errors:
        _print_errors(index.errors, "summary")
        return 2
    out: dict[str, Any] = {
        "node": index.node_id,
        "interception_mode": index.interception_mode,
        "listeners": len(index.listeners),
        "clusters": len(index.clusters),
        "warnings": len(index.warnings)
        if index.complete
        else "not checked (listeners and clusters not built: --format json builds and checks them)",
    }
    if index.secret_values:
        out["redacted"] = f"{index.secret_values} secret value(s)"
    for lst in index.listeners:
        if lst.state != "active":
            out[f"listener {lst.name}"] = f"{lst.state}: {lst.error_detail or ''}".strip()
    for k, v in out.items():
        print(f"{k}: {v}")
    return 0


def _plain(obj: Any) -> Any:
    """A JSON-friendly view of a frozen dataclass (routes and policy rules)."""
    from dataclasses import fields, is_dataclass
    from enum import Enum

    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if getattr(obj, f.name) is not None}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [_plain(x) for x in obj]
    if isinstance(obj, int | str | bool | float) or obj is None:
        return obj
    return str(obj)


def parse_listen(spec: str) -> Socket:
    """`[ADDR:]PORT[,transparent][,uid=N][,gid=N][,mark=N][,name=X][,udp]`."""
    from meshviz.engine.core.model import Family, Socket

    head, *flags = spec.split(",")
    addr = None
    if head.count(":") >= 1 and not head.startswith("["):
        a, _, port_s = head.rpartition(":")
        addr = ipaddress.ip_address(a)
    elif head.startswith("["):
        a, _, rest = head[1:].partition("]")
        addr, port_s = ipaddress.ip_address(a), rest.lstrip(":")
    else:
        port_s = head
    kw: dict[str, Any] = {"protocol": "tcp", "local_port": int(port_s), "local_addr": addr}
    for f in flags:
        k, _, v = f.partition("=")
        if k == "transparent":
            kw["transparent"] = True
        elif k in ("uid", "gid", "mark"):
            kw[k] = int(v, 0)
        elif k == "name":
            kw["name"] = v
        elif k in ("udp", "tcp"):
            kw["protocol"] = k
        elif k == "v6":
            kw["family"] = Family.IPV6
        else:
            raise ValueError(f"unknown --listen flag {f!r}")
    if addr is not None:
        kw["family"] = Family.of(addr)
    kw.setdefault("name", f"listener :{port_s}")
    return Socket(**kw)


#: Evidence kinds the commands take: (argument attribute, keyword of the engine's facade).
EVIDENCE_ARGS = tuple((k.name, k.name) for k in EVIDENCE_KINDS if k.name != "envoy")


def _evidence_texts(args: argparse.Namespace, *, envoy: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """The evidence files named on the command line, read, and their names (for errors)."""
    texts: dict[str, Any] = {}  # str | None each
    sources: dict[str, str] = {}
    kinds = EVIDENCE_ARGS + ((("envoy", "envoy"),) if envoy else ())
    for attr, key in kinds:
        path = getattr(args, attr, None)
        texts[key] = _read(path) if path else None
        sources[key] = path or ""
    return texts, sources


def _add_evidence_files(sp: argparse.ArgumentParser) -> None:
    for kind in EVIDENCE_KINDS:
        if kind.name != "envoy":  # --envoy may be repeated: added with the story's options
            sp.add_argument(kind.flag, help=kind.help)


def _need_rules(args: argparse.Namespace) -> bool:
    if not args.iptables and not args.ip6tables and not args.nftables:
        print("error: give --iptables, --ip6tables and/or --nftables", file=sys.stderr)
        return False
    return True


def cmd_trace(args: argparse.Namespace) -> int:
    from meshviz.engine.core.model import Packet
    from meshviz.engine.core.netaddr import split_host_port
    from meshviz.engine.core.trace import render_text
    from meshviz.engine.pipeline.load import load_snapshot
    from meshviz.engine.pipeline.pod import trace
    from meshviz.engine.sim.simulate import Sender

    try:
        src, sport = split_host_port(args.src)
        dst, dport = split_host_port(args.dst)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    local = args.local_uid is not None or args.local_gid is not None
    if args.in_iface and local:
        print(
            "error: give either --in-iface (received packet) or --local-uid/--local-gid (sent locally)", file=sys.stderr
        )
        return 1
    if not _need_rules(args):
        return 1
    sockets = tuple(parse_listen(s) for s in args.listen) if args.listen else None
    pod_ip = args.pod_ip or (str(dst) if not local else None)
    texts, sources = _evidence_texts(args, envoy=False)
    loaded = load_snapshot(**texts, pod_ip=pod_ip, sockets=sockets, sources=sources)
    if loaded.errors:
        _print_errors(loaded.errors, args.format)
        return 2
    flags = frozenset(f.strip().upper() for f in args.tcp_flags.split(",") if f.strip())
    packet = Packet(
        src=src,
        dst=dst,
        protocol=args.proto,
        sport=sport or 0,
        dport=dport or 0,
        tcp_flags=flags if args.proto == "tcp" else frozenset(),
        mark=args.mark,
    )
    if local:
        sender = Sender(uid=args.local_uid, gid=args.local_gid, mark=args.mark, transparent=args.transparent)
        traces = trace(loaded.snapshot, packet, sender=sender)
    else:
        iface = args.in_iface or _pod_iface_of(loaded.snapshot, pod_ip)
        traces = trace(loaded.snapshot, packet, in_iface=iface)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "traces": [t.to_dict() for t in traces],
                    "warnings": [w.to_dict() for w in loaded.warnings],
                },
                indent=2,
            )
        )
    else:
        for w in loaded.warnings:
            print(str(w))
        for i, t in enumerate(traces, 1):
            if len(traces) > 1:
                print(f"--- trace {i} of {len(traces)}")
            print(render_text(t))
    return 0


def _pod_iface_of(snapshot: Any, pod_ip: str | None) -> str:
    from meshviz.engine.core.defaults import DEFAULT_POD_IFACE
    from meshviz.engine.evidence.profile import pod_interface

    if pod_ip is None:
        return DEFAULT_POD_IFACE
    return pod_interface(snapshot, ipaddress.ip_address(pod_ip)) or DEFAULT_POD_IFACE


def cmd_story(args: argparse.Namespace) -> int:
    from meshviz.engine.core.trace import render_text
    from meshviz.engine.pipeline.pod import run_story

    if args.udp:
        args.direction = "udp"
    if args.direction == "inbound" and (args.client is None or args.port is None):
        print("error: an inbound story needs --client IP[:PORT] and --port N", file=sys.stderr)
        return 1
    if args.direction in ("outbound", "udp") and (args.dst is None or args.app_uid is None or args.app_gid is None):
        print(f"error: a{'n outbound' if args.direction == 'outbound' else ' udp'} story needs --dst IP:PORT, "
              "--app-uid N and --app-gid N", file=sys.stderr)  # fmt: skip
        return 1
    if not _need_rules(args):
        return 1
    texts, sources = _evidence_texts(args)
    result = run_story(
        **texts,
        sources=sources,
        pod_ip=args.pod_ip,
        proxy_uid=args.proxy_uid,
        proxy_gid=args.proxy_gid,
        direction=args.direction,
        client=args.client,
        port=args.port,
        dst=args.dst,
        app_uid=args.app_uid,
        app_gid=args.app_gid,
        app_ports=tuple(args.app_port),
        client_tls=args.client_tls,
        dns_proxy=not args.no_dns_proxy,
    )
    if result.errors:
        _print_errors(result.errors, args.format)
        return 2
    assert result.story is not None
    st = result.story
    if args.format == "json":
        out = st.to_dict()
        out["warnings"] = [w.to_dict() for w in result.warnings]
        print(json.dumps(out, indent=2))
        return 0
    print(st.summary)
    print()
    print("verdict:")
    for k, v in st.verdict.to_dict().items():
        print(f"  {k}: {v}")
    print("findings:")
    for f in st.findings:
        print(f"  [{f.kind}] {f.text}")
        for r in f.refs:
            print(f"      {r}")
    for h in st.hops:
        print()
        print(f"== {h.title} ({h.node}): {h.detail}")
        for step in h.steps:
            print(f"   - {step}")
        if h.trace is not None:
            print("   " + render_text(h.trace).replace("\n", "\n   "))
    return 0


def _evidence(args: argparse.Namespace) -> Any:
    from meshviz.engine.pipeline.evidence import Evidence

    t, _ = _evidence_texts(args)
    return Evidence(
        iptables=t["iptables"] or "",
        pod_ip=args.pod_ip,
        ip_rule=t["ip_rule"],
        ip_route=t["ip_route"],
        sysctl=t["sysctl"],
        envoy=t["envoy"],
        ip6tables=t["ip6tables"],
        ip6_rule=t["ip6_rule"],
        ip6_route=t["ip6_route"],
        addr=t["addr"],
        nftables=t["nftables"],
        proxy_uid=args.proxy_uid,
        proxy_gid=args.proxy_gid,
        app_ports=tuple(args.app_port),
        labels=tuple(tuple(lbl.split("=", 1)) for lbl in args.label),
        namespace=args.namespace,
        workload=args.workload,
    )


def cmd_fix(args: argparse.Namespace) -> int:
    from meshviz.engine.core.errors import EngineInputError
    from meshviz.engine.fix.plans import fix

    if args.client is None or args.port is None:
        print(
            "error: fix needs --client IP[:PORT] and --port N (the connection whose client IP must be kept)",
            file=sys.stderr,
        )
        return 1
    if not _need_rules(args):
        return 1
    try:
        result = fix(_evidence(args), client=args.client, port=args.port, goal=args.goal)
    except EngineInputError as e:
        _print_errors(e.errors, args.format)
        return 2
    out = result.to_dict()
    if args.format == "json":
        print(json.dumps(out, indent=2))
        return 0
    print(f"goal: {result.goal}: {'reached' if result.works else 'NOT reached'} after the patch")
    print(f"backend: {result.backend} (the firewall the commands below are for)")
    print(f"before: {json.dumps(result.before)}")
    print(f"after:  {json.dumps(result.after)}")
    print(f"        {result.after_summary}")
    for p in out["patches"]:
        print(f"\n## {p['title']}\n{p['why']}")
        for a in p["artifacts"]:
            print(f"--- {a['title']} ({a['kind']})\n{a['content']}")
    for d in out["not_needed"]:
        print(f"not needed: {d}")
    for a in out["alternatives"]:
        print(f"\nalternative (unverified): {a['title']}: {a['tradeoffs']}")
    for n in out["notes"]:
        print(f"note: {n}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from meshviz.engine.core.errors import EngineInputError
    from meshviz.engine.fix.compare import compare

    if args.client is None or args.port is None:
        print("error: compare needs --client IP[:PORT] and --port N", file=sys.stderr)
        return 1
    if not _need_rules(args):
        return 1
    try:
        out = compare(_evidence(args), [(args.client, args.port)])
    except EngineInputError as e:
        _print_errors(e.errors, args.format)
        return 2
    if args.format == "json":
        print(json.dumps(out, indent=2))
        return 0
    a, b = out["modes"]
    print(f"{'':50} {a + ' (as uploaded)':45} {b + ' (derived)'}")
    for conn in out["connections"]:
        for row in conn["rows"]:
            mark = "*" if row["differs"] else " "
            print(f"{mark} {row['label']:48} {str(row[a])[:44]:45} {str(row[b])[:60]}")
    print(f"\nbackend: {out['backend']}")
    print(f"\n{b} derived: " + "; ".join(out["derived"]["how"]))
    if out["derived"].get("nft_fragment"):
        print(f"\n{b} as nft -f fragment (Istio's tables replaced, every other table kept):")
        print(out["derived"]["nft_fragment"].rstrip("\n"))
    for m, costs in out["costs"].items():
        print(f"\ncost of {m}:")
        for c in costs:
            print(f"  - {c}")
    return 0


def _add_evidence_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--bundle", help="a collect.sh bundle (meshviz-NS-POD.tar.gz) in place of the files below")
    _add_evidence_files(sp)
    sp.add_argument(
        "--envoy",
        action="append",
        help="Envoy /config_dump JSON or istioctl proxy-config ... -o json output; repeat to merge several",
    )
    sp.add_argument("--pod-ip", help="the pod's IP (default: the bundle, Envoy's node id, or the routes' only address)")
    sp.add_argument("--proxy-uid", type=int)
    sp.add_argument("--proxy-gid", type=int)
    sp.add_argument("--app-port", type=int, action="append", default=[])
    sp.add_argument("--client", help="the client IP[:PORT]")
    sp.add_argument("--port", type=int, help="the pod port the client connects to")
    sp.add_argument("--label", action="append", default=[], help="pod label k=v (for the EnvoyFilter selector)")
    sp.add_argument("--namespace")
    sp.add_argument("--workload", help="e.g. deployment/reviews-v1 (for kubectl patch)")
    sp.add_argument("--format", choices=("json", "text"), default="text")


# istio/cli_generate.py's help for the command (imported only when the command is `generate`)
GENERATE_HELP = "print the iptables or nftables rules Istio programs for given settings"


def build_parser(*, generate: bool = True) -> argparse.ArgumentParser:
    """The CLI's parser; without `generate`, that command is listed but its options are not built."""
    p = argparse.ArgumentParser(prog="python -m meshviz.engine", description="meshviz engine")
    sub = p.add_subparsers(dest="command", required=True)

    pp = sub.add_parser("parse", help="parse one evidence file and print the model or a summary")
    pp.add_argument("file")
    pp.add_argument(
        "--kind", choices=("iptables", "nftables", "ip-rule", "ip-route", "sysctl", "envoy"), default="iptables"
    )
    pp.add_argument(
        "--format",
        choices=("json", "summary"),
        default="summary",
        help="summary of an Envoy dump: its JSON and envelope checked and its secrets redacted, but its listeners and "
        "clusters indexed, not built (their errors and the warnings need json)",
    )
    pp.add_argument(
        "--lenient",
        action="store_true",
        help="unknown match options become warnings (rules using them are reported unsupported)",
    )
    pp.set_defaults(func=cmd_parse)

    tp = sub.add_parser("trace", help="trace one packet through the pod's kernel")
    _add_evidence_files(tp)
    tp.add_argument("--src", required=True, help="IP[:PORT] ([IPv6]:PORT)")
    tp.add_argument("--dst", required=True, help="IP:PORT ([IPv6]:PORT)")
    tp.add_argument("--in-iface", help="the packet arrives on this interface (default: the one holding the pod IP)")
    tp.add_argument("--local-uid", type=int, help="sent by a local process with this uid")
    tp.add_argument("--local-gid", type=int, help="... and this gid")
    tp.add_argument("--mark", type=lambda s: int(s, 0), default=0, help="SO_MARK of the sending socket")
    tp.add_argument("--transparent", action="store_true", help="the sending socket has IP_TRANSPARENT")
    tp.add_argument("--proto", default="tcp", choices=("tcp", "udp", "icmp"))
    tp.add_argument("--tcp-flags", default="SYN")
    tp.add_argument("--pod-ip", help="the pod's address on eth0 (default: --dst for received packets)")
    tp.add_argument(
        "--listen",
        action="append",
        default=[],
        help="a socket in the pod: [ADDR:]PORT[,transparent][,uid=N][,gid=N][,mark=N][,name=X]; "
        "without any, socket lookups are assumptions",
    )
    tp.add_argument("--format", choices=("json", "text"), default="text")
    tp.set_defaults(func=cmd_trace)

    sp = sub.add_parser("story", help="follow a whole connection through the kernel and Envoy")
    _add_evidence_args(sp)
    sp.add_argument("--direction", choices=("inbound", "outbound", "udp"), default="inbound")
    sp.add_argument(
        "--udp",
        action="store_true",
        help="a UDP datagram (a DNS query) from --app-uid/--app-gid to --dst and its answer: --direction udp",
    )
    sp.add_argument("--no-dns-proxy", action="store_true", help="udp: no DNS proxy (istio-agent) listens on 15053")
    sp.add_argument("--dst", help="outbound / udp: IP:PORT the application connects / sends to")
    sp.add_argument("--app-uid", type=int)
    sp.add_argument("--app-gid", type=int)
    sp.add_argument("--client-tls", action="store_true", help="the client speaks mTLS (a meshed client)")
    sp.set_defaults(func=cmd_story)

    fp = sub.add_parser("fix", help="generate a verified patch for a goal")
    _add_evidence_args(fp)
    fp.add_argument("--goal", default="preserve-client-ip", choices=("preserve-client-ip",))
    fp.set_defaults(func=cmd_fix)

    cp = sub.add_parser("compare", help="REDIRECT vs TPROXY side by side for the same pod and connection")
    _add_evidence_args(cp)
    cp.set_defaults(func=cmd_compare)

    if generate:
        from meshviz.engine.istio.cli_generate import add_generate_parser

        add_generate_parser(sub)
    else:  # its options need the whole Istio generator imported (~0.1-0.3 s): only when the command is `generate`
        sub.add_parser("generate", help=GENERATE_HELP)
    return p


def _resolve_inputs(args: argparse.Namespace) -> int:
    """--bundle and repeated --envoy into the single inputs the commands read; 0, or an exit status."""
    if getattr(args, "bundle", None):
        from meshviz.engine.evidence.archive import ArchiveError
        from meshviz.engine.evidence.bundle import read_bundle

        try:
            bundle = read_bundle(Path(args.bundle).read_bytes(), source=args.bundle)
        except ArchiveError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for kind, flag in EVIDENCE_ARGS:
            if getattr(args, flag) is None and kind in bundle.evidence:
                setattr(
                    args, flag, _Given(bundle.members[kind] or f"{args.bundle} (reconstructed)", bundle.evidence[kind])
                )
        if args.envoy is None and "envoy" in bundle.evidence:
            args.envoy = [_Given(bundle.members["envoy"], bundle.evidence["envoy"])]
        ident = bundle.identity
        args.pod_ip = args.pod_ip or ident.pod_ip
        args.proxy_uid = ident.proxy_uid if args.proxy_uid is None else args.proxy_uid
        args.proxy_gid = ident.proxy_gid if args.proxy_gid is None else args.proxy_gid
        args.app_port = args.app_port or list(ident.app_ports)
        args.label = args.label or [f"{k}={v}" for k, v in sorted(ident.labels.items())]
        args.namespace = args.namespace or ident.namespace or None
        args.workload = args.workload or ident.workload or None
        for note in bundle.notes:
            print(f"bundle: {note}", file=sys.stderr)
    if getattr(args, "envoy", None) is not None and isinstance(args.envoy, list):
        if len(args.envoy) == 1:
            args.envoy = args.envoy[0]
        else:
            from meshviz.engine.envoy.proxyconfig import merge_envoy_inputs

            merged = merge_envoy_inputs([(str(e), _read(e)) for e in args.envoy])
            if merged.errors:
                _print_errors(merged.errors, args.format)
                return 2
            args.envoy = _Given(" + ".join(str(e) for e in args.envoy), merged.text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    commands = ("parse", "trace", "story", "fix", "compare")
    args = build_parser(generate=not given or given[0] not in commands).parse_args(argv)
    try:
        status = _resolve_inputs(args)
        if status:
            return status
        return int(args.func(args))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # a usage error the engine found (an address that is not one, no pod IP, ...)
        print(f"error: {e}", file=sys.stderr)
        return 1
