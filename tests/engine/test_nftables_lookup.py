"""Hashed set, map and verdict-map lookups (`nftables/lookup.py`) find what the linear scan finds - the first
element in the order written whose key matches - and fail where it fails, for addresses (exact, prefixes,
ranges, IPv6), protocols, ports (numbers, names, ranges), interfaces (with `*` wildcards), conntrack states,
marks, concatenations, and elements the comparison cannot read."""

from __future__ import annotations

import ipaddress
import random

import pytest

from meshviz.engine.nftables import evaluate as ev
from meshviz.engine.nftables import lookup
from meshviz.engine.nftables.model import Element, Value, Verdict

ADDRS = ["10.0.0.1", "10.0.0.2", "10.0.1.0/24", "10.0.0.0/8", "10.0.0.5-10.0.0.9", "fd00::1", "fd00::/64", "::1"]
ADDRS_BAD = ["10.0.0.300", "eth0", "10.0.0.1-fd00::2", "fd00::1%eth0"]
PORTS = ["80", "443", "http", "1000-2000", "15001", "0x50", "53", "9-3"]
PORTS_BAD = ["nosuchservice", "80-", "-"]
PROTOS = ["tcp", "udp", "6", "17", "icmp", "ipproto-200", "nosuchproto"]
IFACES = ["eth0", "lo", "eth*", "veth1", "*"]
MARKS = ["0x1", "0x4000", "1337", "7-9", "0", "0x10-0x20"]


def _value(kind: str, rnd: random.Random) -> object:
    if kind == "addr":
        return ipaddress.ip_address(
            rnd.choice(["10.0.0.1", "10.0.0.7", "10.0.1.9", "10.9.9.9", "192.168.0.1", "fd00::1", "fd00::9", "::1"])
        )
    if kind == "port":
        return ev._Port(rnd.choice([80, 443, 1500, 15001, 53, 22, 5, 2000]))
    if kind == "proto":
        return ev._Proto(rnd.choice(["tcp", "udp", "icmp", "200", "sctp"]))
    if kind == "iface":
        return ev._Iface(rnd.choice(["eth0", "eth1", "lo", "veth1", "wlan0"]))
    return rnd.choice([0, 1, 0x4000, 1337, 8, 0x15, 99])


def _text(kind: str, rnd: random.Random, bad: bool) -> str:
    pool = {"addr": ADDRS, "port": PORTS, "proto": PROTOS, "iface": IFACES, "int": MARKS}[kind]
    badpool = {"addr": ADDRS_BAD, "port": PORTS_BAD, "int": ["mark", "0xzz"]}.get(kind, [])
    return rnd.choice(badpool) if bad and badpool and rnd.random() < 0.1 else rnd.choice(pool)


def _linear(values: tuple[object, ...], elements: tuple[Element, ...]) -> Element | None:
    for el in elements:
        if len(el.key) == len(values) and all(ev._eq(v, k.text_) for v, k in zip(values, el.key, strict=True)):
            return el
    return None


def _outcome(fn: object, *args: object) -> object:
    try:
        return ("found", fn(*args))  # type: ignore[operator]
    except Exception as e:
        return ("raised", type(e), str(e))


@pytest.mark.parametrize("kinds", [("addr",), ("port",), ("proto",), ("iface",), ("int",), ("addr", "proto", "port")])
@pytest.mark.parametrize("bad", [False, True], ids=["readable", "some-unreadable"])
def test_a_hashed_lookup_finds_what_the_linear_scan_finds(kinds: tuple[str, ...], bad: bool) -> None:
    rnd = random.Random(f"{kinds}{bad}")
    for _ in range(30):
        n = rnd.choice([lookup.SMALL, 40, 200])
        elements = tuple(
            Element(
                tuple(Value(_text(k, rnd, bad)) for k in kinds)
                if rnd.random() > 0.02
                else (Value("x"),) * (len(kinds) + 1),  # a key of another length: skipped
                Verdict("goto", f"c{i}"),
            )
            for i in range(n)
        )
        for _ in range(30):
            values = tuple(_value(k, rnd) for k in kinds)
            assert _outcome(ev._in_set, values if len(values) > 1 else values[0], elements) == _outcome(
                _linear, values, elements
            )


def test_a_ten_thousand_element_verdict_map_is_looked_up_without_a_scan() -> None:
    elements = tuple(
        Element(
            (Value(str(ipaddress.ip_address(0xAC100000 + i))), Value("tcp"), Value("80")), Verdict("goto", f"svc{i}")
        )
        for i in range(10000)
    )
    calls = 0

    def counting_eq(have: object, want: str) -> bool:
        nonlocal calls
        calls += 1
        return ev._eq(have, want)

    values = (ipaddress.ip_address(0xAC100000 + 7777), ev._Proto("tcp"), ev._Port(80))
    hit = lookup.find(values, elements, counting_eq, ev._VALUE_TYPES)
    assert hit is not None and hit.data == Verdict("goto", "svc7777")
    assert calls == 0
    assert lookup.find((values[0], values[1], ev._Port(81)), elements, counting_eq, ev._VALUE_TYPES) is None
