"""Hypothesis strategies for every evidence format meshviz reads, biased towards the shapes that broke it.

Each format has three sources of inputs: a grammar of plausible lines (so that deep parser paths and the simulator
are reached), real files mutated (characters and lines inserted, deleted, duplicated), and the pathological seeds of
issue 17 (chains that each jump twice to the next, nesting thousands of levels deep, numbers thousands of digits
long, odd JSON types where Envoy expects strings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[2] / "meshviz" / "analyses" / "examples"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


IPTABLES_FILES = sorted(
    _read(p)
    for p in (FIXTURES / "corpus").rglob("*")
    if p.is_file() and p.stat().st_size < 40_000 and p.suffix != ".md"
)[:60] + [_read(p) for p in EXAMPLES.glob("*/iptables")]
IP_RULE_FILES = [_read(p) for p in EXAMPLES.glob("*/ip-rule")] + [
    _read(p) for p in (FIXTURES / "ip-rules").glob("*.txt")
]
IP_ROUTE_FILES = [_read(p) for p in EXAMPLES.glob("*/ip-route")]
SYSCTL_FILES = [_read(p) for p in EXAMPLES.glob("*/sysctl")]
ENVOY_FILES = [_read(p) for p in EXAMPLES.glob("*/envoy.json")]

# --------------------------------------------------------------------------
# generic text mutation
# --------------------------------------------------------------------------

NASTY = [
    "\x00",
    "\t",
    "\r",
    "\ufeff",
    "\u2028",
    "'",
    '"',
    "\\",
    "!",
    "--",
    "-",
    "/",
    ":",
    "[",
    "]",
    "{",
    "}",
    ",",
    "0x",
    "4294967296",
    "18446744073709551616",
    "-1",
    "999999999999999999999999",
    "::",
    "%",
    "é",
    "\ud7ff",
]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """`base` with up to 6 edits: a line deleted or duplicated, text inserted or replaced."""
    text = draw(base)
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "replace", "swap"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            line = lines[i]
            pos = draw(st.integers(0, len(line)))
            piece = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)))
            cut = pos + (draw(st.integers(0, 4)) if op == "replace" else 0)
            lines[i] = line[:pos] + piece + line[cut:]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# iptables
# --------------------------------------------------------------------------

BUILTIN = {
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    "raw": ["PREROUTING", "OUTPUT"],
    "security": ["INPUT", "FORWARD", "OUTPUT"],
}
USER_CHAINS = ["F0", "F1", "F2", "F3", "ISTIO_INBOUND", "a/b", "x%y"]
MATCHES = [
    "-p tcp",
    "-p udp",
    "-p icmp",
    "-s 10.0.0.0/8",
    "-d 127.0.0.1/32",
    "! -d 127.0.0.1/32",
    "-s 127.0.0.6/32",
    "-d 10.0.0.10",
    "-i lo",
    "-o lo",
    "-i eth0",
    "! -o lo",
    "-m mark --mark 0x539",
    "-m mark --mark 1337/0xffffffff",
    "-m mark ! --mark 0x1/0x1",
    "-m owner --uid-owner 1337",
    "-m owner ! --gid-owner 1337",
    "-m owner --uid-owner 0-10",
    "-m conntrack --ctstate RELATED,ESTABLISHED",
    "-m state --state NEW",
    "-m socket --transparent",
    "-m socket",
    "-m statistic --mode random --probability 0.5",
    "-m statistic --mode nth --every 2 --packet 0",
    "-m addrtype --dst-type LOCAL",
    "-m addrtype ! --src-type LOCAL --limit-iface-out",
    "-m tcp --dport 15006",
    "-p tcp --dport 80:90",
    "-p tcp --sport 1024:",
    "-m multiport --dports 80,443,8080",
    "-m set --match-set s src",
    '-m comment --comment "a b"',
    "-m connmark --mark 0x1/0x1",
    "-m length --length 0:100",
    "-m limit --limit 5/s",
    "-m iprange --src-range 10.0.0.1-10.0.0.9",
    "-m tcp --tcp-flags SYN,ACK SYN",
    "-f",
    "-m frob --frob",
]
TARGETS = [
    "-j ACCEPT",
    "-j DROP",
    "-j RETURN",
    "-j REJECT --reject-with tcp-reset",
    "-j REJECT",
    "-j MARK --set-xmark 0x539/0xffffffff",
    "-j MARK --xor-mark 0x1",
    "-j MARK --set-mark 1337",
    "-j MARK --or-mark 0x2",
    "-j CONNMARK --save-mark",
    "-j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff",
    "-j CONNMARK --set-xmark 0x1/0x1",
    "-j TPROXY --on-port 15006 --tproxy-mark 0x1/0x1",
    "-j TPROXY --on-port 15006 --on-ip 127.0.0.1 --tproxy-mark 1337",
    "-j REDIRECT --to-ports 15001",
    "-j REDIRECT",
    "-j DNAT --to-destination 10.1.0.1:8080",
    "-j DNAT --to-destination [::1]:80",
    "-j SNAT --to-source 127.0.0.6",
    "-j MASQUERADE",
    "-j MASQUERADE --to-ports 1000-2000",
    "-j LOG",
    "-j LOG --log-prefix x",
    "-j CT --zone 1",
    "-j CT --notrack",
    "-j NOTRACK",
    "-j TCPMSS --clamp-mss-to-pmtu",
    "-j NFQUEUE",
    "-j TEE --gateway 10.0.0.1",
    "-j BOGUS",
    "",
]


@st.composite
def iptables_rule(draw: st.DrawFn, table: str, chains: list[str]) -> str:
    chain = draw(st.sampled_from(chains))
    matches = draw(st.lists(st.sampled_from(MATCHES), max_size=3))
    target = draw(
        st.one_of(
            st.sampled_from(TARGETS),
            st.sampled_from([c for c in chains if c not in BUILTIN[table]] or ["ACCEPT"]).map(lambda c: f"-j {c}"),
            st.sampled_from([c for c in chains if c not in BUILTIN[table]] or ["ACCEPT"]).map(lambda c: f"-g {c}"),
        )
    )
    verb = draw(st.sampled_from(["-A", "-A", "-A", "-I"]))
    return " ".join(p for p in [verb, chain, *matches, target] if p)


@st.composite
def iptables_grammar(draw: st.DrawFn) -> str:
    out: list[str] = []
    for table in draw(st.lists(st.sampled_from(list(BUILTIN)), min_size=1, max_size=3, unique=True)):
        users = draw(st.lists(st.sampled_from(USER_CHAINS), max_size=4, unique=True))
        chains = BUILTIN[table] + users
        out.append(f"*{table}")
        out += [f":{c} ACCEPT [0:0]" for c in BUILTIN[table]]
        out += [f":{c} - [0:0]" for c in users]
        out += draw(st.lists(iptables_rule(table, chains), max_size=12))
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def fan_out(depth: int, change_mark: bool) -> str:
    """Issue 17's exponential shape: chains that each jump twice to the next."""
    lines = ["*mangle", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":F{i} - [0:0]" for i in range(depth + 1)]
    lines += ["-A PREROUTING -j F0", "-A OUTPUT -j F0"]
    for i in range(depth):
        if change_mark:
            lines.append(f"-A F{i} -j MARK --xor-mark 0x1")
        lines += [f"-A F{i} -j F{i + 1}"] * 2
    return "\n".join([*lines, "COMMIT"]) + "\n"


FAN_OUT = st.builds(fan_out, st.integers(1, 60), st.booleans())

iptables_text = st.one_of(
    iptables_grammar(),
    mutated(st.sampled_from(IPTABLES_FILES)),
    mutated(iptables_grammar()),
    FAN_OUT,
    st.text(max_size=300),
)

# --------------------------------------------------------------------------
# ip rule / ip route / sysctl
# --------------------------------------------------------------------------

ADDRS = ["all", "10.0.0.0/8", "127.0.0.6", "::1", "fe80::/10", "0.0.0.0/0", "1.2.3.4/33", "10.0.0.10"]
TABLES = ["local", "main", "default", "133", "4294967295", "mytable", "0"]


@st.composite
def ip_rule_line(draw: st.DrawFn) -> str:
    parts = [f"{draw(st.integers(0, 40000))}:"] if draw(st.booleans()) else ["ip", "rule", "add"]
    if draw(st.booleans()):
        parts.append("not")
    parts += ["from", draw(st.sampled_from(ADDRS))]
    for opt in draw(
        st.lists(
            st.sampled_from(
                [
                    "to 10.0.0.0/24",
                    "fwmark 0x539",
                    "fwmark 1337/0xffffffff",
                    "iif lo",
                    "oif eth0",
                    "uidrange 0-1000",
                    "ipproto tcp",
                    "dport 80",
                    "sport 1000-2000",
                    "tos 0x10",
                    "pref 100",
                    "l3mdev",
                ]
            ),
            max_size=3,
        )
    ):
        parts.append(opt)
    parts.append(
        draw(st.sampled_from([f"lookup {t}" for t in TABLES] + ["goto 100", "blackhole", "unreachable", "prohibit"]))
    )
    return " ".join(parts)


@st.composite
def ip_route_line(draw: st.DrawFn) -> str:
    parts: list[str] = []
    kind = draw(
        st.sampled_from(["", "local", "broadcast", "unreachable", "blackhole", "prohibit", "throw", "multicast"])
    )
    if kind:
        parts.append(kind)
    parts.append(draw(st.sampled_from(["default", *ADDRS[1:], "10.0.0.0/24", "127.0.0.0/8"])))
    for opt in draw(
        st.lists(
            st.sampled_from(
                [
                    "via 10.0.0.1",
                    "dev eth0",
                    "dev lo",
                    f"table {draw(st.sampled_from(TABLES))}",
                    "proto kernel",
                    "scope host",
                    "scope link",
                    "src 10.0.0.10",
                    "metric 100",
                    "onlink",
                    "mtu 1500",
                    "pref medium",
                ]
            ),
            max_size=4,
        )
    ):
        parts.append(opt)
    return " ".join(parts)


ip_rule_text = st.one_of(
    st.lists(ip_rule_line(), max_size=10).map("\n".join),
    mutated(st.sampled_from(IP_RULE_FILES)),
    st.text(max_size=200),
)
ip_route_text = st.one_of(
    st.lists(ip_route_line(), max_size=10).map("\n".join),
    mutated(st.sampled_from(IP_ROUTE_FILES)),
    st.text(max_size=200),
)
SYSCTL_KEYS = [
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.conf.eth0.rp_filter",
    "net.ipv4.tcp_fwmark_accept",
    "net.ipv4.conf.all.src_valid_mark",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.ip_local_port_range",
    "kernel.x",
]
sysctl_text = st.one_of(
    st.lists(
        st.tuples(
            st.sampled_from(SYSCTL_KEYS),
            st.one_of(
                st.sampled_from(["0", "1", "2", "32768\t60999", "-1", "99999999999999999999"]), st.text(max_size=5)
            ),
            st.sampled_from([" = ", "=", ": "]),
        ).map(lambda t: f"{t[0]}{t[2]}{t[1]}"),
        max_size=10,
    ).map("\n".join),
    mutated(st.sampled_from(SYSCTL_FILES)),
    st.text(max_size=200),
)

# --------------------------------------------------------------------------
# Envoy config dumps
# --------------------------------------------------------------------------

ENVOY_KEYS = [
    "configs",
    "@type",
    "dynamic_listeners",
    "active_state",
    "listener",
    "name",
    "address",
    "socket_address",
    "port_value",
    "filter_chains",
    "filter_chain_match",
    "destination_port",
    "transport_socket",
    "filters",
    "typed_config",
    "cluster",
    "dynamic_active_clusters",
    "transparent",
    "listener_filters",
    "original_src",
    "mark",
    "upstream_bind_config",
    "source_address",
    "use_original_dst",
    "bind_to_port",
    "prefix_ranges",
    "address_prefix",
    "prefix_len",
    "server_names",
    "application_protocols",
    "route_config",
    "virtual_hosts",
    "routes",
    "type",
    "load_assignment",
    "endpoints",
    "lb_endpoints",
    "endpoint",
    "value",
    "type_url",
    "static_listeners",
]
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["0.0.0.0", "127.0.0.6", "::", "inbound|8080||", "tls", "15006"]),
)
json_values = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(ENVOY_KEYS), st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=40,
)


@st.composite
def envoy_mutated(draw: st.DrawFn) -> str:
    """A real dump with random subtrees replaced by random JSON (odd types where Envoy expects others)."""
    dump = json.loads(draw(st.sampled_from(ENVOY_FILES)))
    for _ in range(draw(st.integers(1, 4))):
        node: Any = dump
        path_len = draw(st.integers(1, 8))
        for _ in range(path_len):
            if isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node)))
                if isinstance(node[key], dict | list) and node[key] and draw(st.booleans()):
                    node = node[key]
                    continue
                node[key] = draw(json_values)
                break
            if isinstance(node, list) and node:
                i = draw(st.integers(0, len(node) - 1))
                if isinstance(node[i], dict | list) and node[i] and draw(st.booleans()):
                    node = node[i]
                    continue
                node[i] = draw(json_values)
                break
            break
    return json.dumps(dump)


def deep(n: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    if opener == "{":
        return '{"a":' * n + "1" + "}" * n
    return opener * n + closer * n


envoy_text = st.one_of(
    envoy_mutated(),
    json_values.map(json.dumps),
    st.dictionaries(st.just("configs"), st.lists(json_values, max_size=3)).map(json.dumps),
    mutated(st.sampled_from(ENVOY_FILES)),
    st.builds(deep, st.integers(1, 5000), st.sampled_from(["[", "{"])),
    st.integers(1, 6000).map(lambda n: '{"configs": [{"port_value": ' + "9" * n + "}]}"),
    st.text(max_size=200),
)

# --------------------------------------------------------------------------
# what-if edits
# --------------------------------------------------------------------------

edit_dicts = st.one_of(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["insert", "replace", "delete", "move"])},
        optional={
            "table": st.sampled_from([*BUILTIN, "bogus", 3]),
            "chain": st.sampled_from(["PREROUTING", "OUTPUT", "ISTIO_INBOUND", "a/b", None]),
            "index": st.one_of(st.integers(-3, 30), st.text(max_size=3), st.none()),
            "to_index": st.integers(-3, 30),
            "rule": st.one_of(
                st.builds(lambda r: r, iptables_rule("mangle", BUILTIN["mangle"] + USER_CHAINS)), st.text(max_size=30)
            ),
            "family": st.sampled_from(["ipv4", "ipv6", "ipx", 4]),
        },
    ),
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["set_text", "append_text"]),
            "kind": st.sampled_from(["iptables", "ip_rule", "ip_route", "sysctl", "envoy", "bogus"]),
            "text": st.one_of(iptables_text, ip_rule_text, ip_route_text, sysctl_text, envoy_text),
        }
    ),
    st.fixed_dictionaries(
        {
            "op": st.just("sysctl"),
            "key": st.sampled_from(SYSCTL_KEYS),
            "value": st.one_of(st.text(max_size=4), st.integers()),
        }
    ),
    st.fixed_dictionaries(
        {"op": st.just("envoy_bind")},
        optional={"address": st.sampled_from(["", "127.0.0.6", "::1", "bogus", 7]), "cluster": st.text(max_size=10)},
    ),
    st.fixed_dictionaries(
        {"op": st.just("envoy_original_src")},
        optional={
            "mark": st.one_of(st.integers(-1, 2**33), st.none(), st.text(max_size=3)),
            "listener": st.text(max_size=8),
        },
    ),
    json_values,
)
edit_lists = st.lists(edit_dicts, max_size=4)

# --------------------------------------------------------------------------
# connections
# --------------------------------------------------------------------------

inbound = st.fixed_dictionaries(
    {
        "direction": st.just("inbound"),
        "client": st.sampled_from(["10.1.1.1:40000", "127.0.0.1:1", "10.0.0.10:5", "[2001:db8::1]:40000"]),
        "port": st.sampled_from([80, 8080, 8083, 15006, 15001, 9080, 1]),
    }
)
outbound = st.fixed_dictionaries(
    {
        "direction": st.just("outbound"),
        "dst": st.sampled_from(["203.0.113.10:443", "127.0.0.1:15001", "10.0.0.10:8080", "[::1]:80"]),
        "app_uid": st.sampled_from([0, 1000, 1337, 4294967294]),
        "app_gid": st.sampled_from([0, 1000, 1337]),
    }
)
connections = st.one_of(inbound, outbound)


# --------------------------------------------------------------------------
# nftables
# --------------------------------------------------------------------------

NFT_FILES = [
    _read(p)
    for p in sorted((FIXTURES / "istio-nftables").glob("*/*.golden")) + sorted((FIXTURES / "nftables-listed").iterdir())
    if p.is_file() and p.suffix != ".md"
]
NFT_STATEMENTS = [
    "meta l4proto tcp",
    "ip daddr != 127.0.0.1/32",
    "ip6 saddr ::6",
    "tcp dport != { 53, 15008 }",
    "udp sport 1-65535",
    "meta mark & 0xfff == 0x539",
    "ct state established,related",
    "ct mark set ct mark & 0xfffff000 | 0x111",
    "meta mark set ct mark",
    "tcp flags syn / syn,ack",
    "ip daddr . tcp dport { 10.0.0.1 . 80 }",
    "ip daddr @s",
    "ip daddr vmap { 10.0.0.1 : jump c0, 10.0.0.2 : drop }",
    "fib daddr type local",
    "socket transparent 1",
    "skuid 1337",
    "counter packets 1 bytes 2",
    "redirect to :15001",
    "tproxy ip to :15006",
    "dnat to 10.0.0.1:80",
    "masquerade",
    "limit rate 3/second",
    "jump c0",
    "goto c1",
    "return",
    "accept",
    "drop",
]


@st.composite
def nft_grammar(draw: st.DrawFn) -> str:
    """A plausible `nft -f` script: a table, a set, base and regular chains, rules of the statements above."""
    lines = [
        "add table inet t",
        "add set inet t s { type ipv4_addr ; flags interval ; }",
        "add element inet t s { 10.0.0.0/8 }",
    ]
    for name, spec in (("pre", "type nat hook prerouting priority -100 ;"), ("c0", ""), ("c1", "")):
        lines.append(f"add chain inet t {name}" + (f" {{ {spec} }}" if spec else ""))
    for _ in range(draw(st.integers(0, 12))):
        chain = draw(st.sampled_from(["pre", "c0", "c1"]))
        verb = draw(st.sampled_from(["add rule", "insert rule"]))
        stmts = draw(st.lists(st.sampled_from(NFT_STATEMENTS), min_size=1, max_size=5))
        lines.append(f"{verb} inet t {chain} {' '.join(stmts)}")
    return "\n".join(lines) + "\n"


nftables_text = st.one_of(
    nft_grammar(),
    mutated(st.sampled_from(NFT_FILES)),
    mutated(nft_grammar()),
    st.text(max_size=300),
)
