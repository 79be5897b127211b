"""Set, map and verdict-map lookups by hashing: the element an nft lookup finds, as the linear scan of
`evaluate._in_set` finds it (the first element, in the order written, whose every key part equals or contains
the packet's value), without comparing the packet with every element of a 10,000-element map.

How a key part compares depends on what the packet's value is (an address, a protocol, a port, an interface,
...): per such kind of lookup, an element set gets an index once - exact key parts in a dict, address and port
intervals of one-part keys sorted for bisect - and the elements that neither holds (interface wildcards,
concatenations with intervals, text the comparison cannot read) are kept in order and compared one by one, so
that a lookup returns, and raises, exactly what the scan would.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

from meshviz.engine.core.names import protocol_number
from meshviz.engine.nftables.model import Element

#: Below this many elements a lookup compares them one by one.
SMALL = 16
#: How many element sets keep their indexes (the biggest of the last few rulesets traced).
KEEP = 64

Compare = Callable[[object, str], bool]


@dataclass(frozen=True)
class ValueTypes:
    """What the evaluator reads from a packet and how it reads a constant (`evaluate._eq`'s pieces)."""

    proto: type  # a protocol name, compared by number
    iface: type  # an interface name (`eth*` in a rule is a prefix)
    flags: type  # TCP flags
    port: type  # a transport port (`http` in a rule is 80)
    read_flags: Callable[[str], int]
    read_port: Callable[[str], int]
    read_int: Callable[[str], int]
    unsupported: type[Exception]


@dataclass
class _Index:
    exact: dict[tuple[object, ...], int] = field(default_factory=dict)
    starts: list[tuple[int, int]] = field(default_factory=list)  # one-part intervals: (low, high) sorted by low
    at: list[int] = field(default_factory=list)  # their element positions
    rest: list[int] = field(default_factory=list)  # compared one by one, in order


class _Complex(Exception):
    """This key part is compared by the scan's own comparison."""


def _kind(have: object, ev: ValueTypes) -> str | None:
    """What the packet's value is, in the order `evaluate._eq` asks (None: the scan decides)."""
    if isinstance(have, ipaddress.IPv4Address):
        return "addr"
    if isinstance(have, ipaddress.IPv6Address):
        return None if have.scope_id else "addr"
    if isinstance(have, ev.proto):
        return "proto"
    if isinstance(have, ev.iface):
        return "iface"
    if isinstance(have, str):
        return "str"
    if isinstance(have, ev.flags):
        return "flags"
    if isinstance(have, ev.port):
        return "port"
    if isinstance(have, int) and not isinstance(have, bool):
        return "int"
    return None


def _addr(text: str) -> tuple[int, int]:
    a = ipaddress.ip_address(text.strip().strip("[]"))  # core.netaddr.parse_ip
    return a.version, int(a)


def _part(kind: str, want: str, ev: ValueTypes) -> tuple[object, ...]:
    """("exact", key) or ("range", low, high) for one key part as written; raises _Complex when the scan's
    comparison has to read it (or would fail on it)."""
    try:
        if kind == "addr":
            if "%" in want:
                raise _Complex
            if "/" in want:
                net = ipaddress.ip_network(want, strict=False)
                return "range", (net.version, int(net.network_address)), (net.version, int(net.broadcast_address))
            lo, sep, hi = want.partition("-")
            if sep:
                a, b = _addr(lo), _addr(hi)
                if a[0] != b[0]:
                    raise _Complex
                return "range", a, b
            return "exact", _addr(want)
        if kind == "proto":
            return "exact", protocol_number(want)
        if kind == "iface":
            if want.endswith("*"):
                raise _Complex
            return "exact", want
        if kind == "str":
            return "exact", want
        if kind == "flags":
            return "exact", ev.read_flags(want)
        num = ev.read_port if kind == "port" else ev.read_int
        lo, sep, hi = want.partition("-")
        if sep and lo and hi:
            return "range", num(lo), num(hi)
        return "exact", num(want)
    except (ValueError, KeyError, ev.unsupported) as e:
        raise _Complex from e


def _lookup_key(kind: str, have: object) -> object:
    if kind == "addr":
        assert isinstance(have, ipaddress.IPv4Address | ipaddress.IPv6Address)
        return have.version, int(have)
    if kind == "proto":
        assert isinstance(have, str)
        return protocol_number(have)
    return have


def _build(elements: tuple[Element, ...], kinds: tuple[str, ...], ev: ValueTypes) -> _Index:
    idx = _Index()
    intervals: list[tuple[object, object, int]] = []
    for n, el in enumerate(elements):
        if len(el.key) != len(kinds):
            continue  # the scan skips it too
        try:
            parts = [_part(k, v.text_, ev) for k, v in zip(kinds, el.key, strict=True)]
        except _Complex:
            idx.rest.append(n)
            continue
        if all(p[0] == "exact" for p in parts):
            idx.exact.setdefault(tuple(p[1] for p in parts), n)
        elif len(parts) == 1:
            intervals.append((parts[0][1], parts[0][2], n))
        else:
            idx.rest.append(n)
    intervals.sort(key=lambda t: t[0])  # type: ignore[arg-type,return-value]
    disjoint = all(a[1] < b[0] for a, b in pairwise(intervals))  # type: ignore[operator]
    if disjoint:
        idx.starts = [(lo, hi) for lo, hi, _ in intervals]  # type: ignore[misc]
        idx.at = [n for _, _, n in intervals]
    else:  # overlapping intervals: the first written wins, as the scan finds it
        idx.rest = sorted(idx.rest + [n for _, _, n in intervals])
    return idx


_INDEXES: dict[int, tuple[tuple[Element, ...], dict[tuple[str, ...], _Index]]] = {}


def _index(elements: tuple[Element, ...], kinds: tuple[str, ...], ev: ValueTypes) -> _Index:
    held = _INDEXES.get(id(elements))
    if held is None or held[0] is not elements:
        if len(_INDEXES) >= KEEP:
            del _INDEXES[next(iter(_INDEXES))]
        held = (elements, {})
        _INDEXES[id(elements)] = held
    idx = held[1].get(kinds)
    if idx is None:
        idx = held[1][kinds] = _build(elements, kinds, ev)
    return idx


def find(values: tuple[object, ...], elements: tuple[Element, ...], equal: Compare, ev: ValueTypes) -> Element | None:
    """The first element whose key matches `values` part by part under `equal` (`evaluate._eq`), as a scan in
    order finds it - and the same exception, when the scan would meet an element it cannot compare first."""
    kinds = tuple(_kind(v, ev) for v in values) if len(elements) >= SMALL else ()
    if not kinds or None in kinds:
        return _scan(values, elements, equal, range(len(elements)))
    ks: tuple[str, ...] = kinds  # type: ignore[assignment]
    idx = _index(elements, ks, ev)
    try:
        key = tuple(_lookup_key(k, v) for k, v in zip(ks, values, strict=True))
    except Exception:
        return _scan(values, elements, equal, range(len(elements)))
    best = idx.exact.get(key)
    if idx.starts:
        x = key[0]
        i = bisect_right(idx.starts, (x, x)) - 1
        # the interval starting at x sorts after (x, x) when it ends past x: look at it too
        for j in (i, i + 1):
            if 0 <= j < len(idx.starts):
                lo, hi = idx.starts[j]
                if lo <= x <= hi and (best is None or idx.at[j] < best):  # type: ignore[operator]
                    best = idx.at[j]
    before = [n for n in idx.rest if best is None or n < best]
    hit = _scan(values, elements, equal, before)
    if hit is not None:
        return hit
    return elements[best] if best is not None else None


def _scan(
    values: tuple[object, ...], elements: tuple[Element, ...], equal: Compare, order: range | list[int]
) -> Element | None:
    for n in order:
        el = elements[n]
        if len(el.key) == len(values) and all(equal(v, k.text_) for v, k in zip(values, el.key, strict=True)):
            return el
    return None
