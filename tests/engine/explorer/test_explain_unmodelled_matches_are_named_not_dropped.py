"""Matches the simulator does not model are described as such, with the match as written; nothing is dropped."""

from __future__ import annotations

import pytest

from meshviz.engine.netfilter.explain import explain_rule
from meshviz.engine.netfilter.parser import parse_iptables


def _rule(line: str, table: str = "filter", strict: bool = True) -> str:
    text = f"*{table}\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{line}\nCOMMIT\n"
    r = parse_iptables(text, strict=strict)
    assert not r.errors, r.errors
    (rule,) = [x for t in r.rulesets[0].tables for c in t.chains for x in c.rules]
    return explain_rule(rule)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("-A INPUT -m set --match-set allow src -j ACCEPT", "unmodelled match -m set --match-set allow src"),
        ("-A INPUT -p tcp -m limit --limit 5/sec -j ACCEPT", "unmodelled match -m limit --limit 5/sec"),
        ("-A INPUT -m recent --rcheck --name x -j DROP", "unmodelled match -m recent --rcheck --name x"),
        ("-A INPUT -m time --timestart 08:00 -j DROP", "unmodelled match -m time --timestart 08:00"),
    ],
)
def test_unmodelled_match_is_described_generically(line: str, expected: str) -> None:
    text = _rule(line)
    assert expected in text
    assert "not modelled" in text or "ipset" in text


def test_modelled_matches_are_described_in_words() -> None:
    text = _rule(
        '-A INPUT -s 10.0.0.0/8 ! -i eth0 -p udp -m multiport --dports 53,853 -m comment --comment "dns" -j DROP'
    )
    assert text == (
        'UDP from 10.0.0.0/8, arriving on any interface except eth0, to ports 53,853 -> drop the packet (comment: "dns")'
    )
    assert "chosen at random with probability 0.25" in _rule(
        "-A INPUT -m statistic --mode random --probability 0.25 -j DROP"
    )
    assert "whose destination address type is LOCAL" in _rule("-A INPUT -m addrtype --dst-type LOCAL -j ACCEPT")
    sock = _rule("-A PREROUTING -p tcp -m socket --transparent -j ACCEPT", table="mangle")
    assert "belonging to an existing local socket (only IP_TRANSPARENT sockets)" in sock


def test_unknown_module_of_a_lenient_parse_is_kept_verbatim() -> None:
    text = _rule("-A INPUT -m nosuchmodule --frob 1 -j ACCEPT", strict=False)
    assert "nosuchmodule" in text and "--frob" in text
    assert text.endswith("-> accept (the packet leaves the filter table at this hook; later tables still see it)")
