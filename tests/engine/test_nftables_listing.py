"""The listing parser (`nftables/listing.py`, chain bodies read on first use) gives what the general parser gives:
the same model (every table, chain, rule, statement, handle, source line and set element), the same errors and
warnings, on every nft listing and Istio golden of the fixtures, on kube-proxy's listing, and on thousands of
damaged copies of them.  Generated listings of several sizes, straight from nft, are compared in
tests/kernel/test_nftables_listing_kernel.py."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from meshviz.engine.nftables.parser import _ListingParser, parse_nftables
from meshviz.engine.nftables.serialize import nft_summary, nft_to_dict

FIX = Path(__file__).resolve().parents[1] / "fixtures"
LISTINGS = sorted(
    p
    for p in [*(FIX / "nftables-listed").iterdir(), *(FIX / "istio-nftables" / "listed").glob("*/*.nft")]
    if p.suffix in (".list", ".handles", ".nft-list", ".nft")
)
GOLDENS = sorted((FIX / "istio-nftables").glob("*/*.golden"))
KUBE = FIX / "nftables-listed" / "kube-proxy-20-services.nft-list"


def _both(text: str, source: str = "nft.list") -> None:
    fast = parse_nftables(text, source)
    summary = nft_summary(fast)  # before anything deferred is read: counts come from the listing parser
    full = parse_nftables(text, source, fast_listing=False)
    assert summary == nft_summary(full)
    assert fast.errors == full.errors
    assert fast.warnings == full.warnings
    assert fast == full  # reads every deferred chain and set: rules, statements, handles, refs, elements
    assert nft_to_dict(fast) == nft_to_dict(full)


def test_the_fixtures_hold_listings_and_goldens() -> None:
    assert len(LISTINGS) >= 70 and len(GOLDENS) >= 40 and KUBE.exists()


@pytest.mark.parametrize("path", LISTINGS + GOLDENS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_fixture_reads_the_same_through_the_listing_parser(path: Path) -> None:
    _both(path.read_text(), path.name)


@pytest.mark.parametrize("path", [p for p in LISTINGS if p.suffix in (".list", ".handles", ".nft-list")])
def test_every_nft_listing_is_read_by_the_listing_parser_not_left_to_the_general_one(path: Path) -> None:
    assert _ListingParser(path.read_text(), path.name).run_listing() is not None


def test_kube_proxys_chains_are_deferred_and_counted_without_being_read() -> None:
    text = KUBE.read_text()
    result = parse_nftables(text, "kube.list")
    chains = result.ruleset.tables[0].chains
    assert all(c.pending_rules() is not None for c in chains)
    assert result.ruleset.rule_count() == parse_nftables(text, "kube.list", fast_listing=False).ruleset.rule_count()
    assert all(c.pending_rules() is not None for c in chains)  # counting read nothing
    assert [c.name for c in chains if c.base] == ["nat-prerouting", "nat-output", "nat-postrouting"]
    assert all(s.elements for s in result.ruleset.tables[0].sets)


def test_a_script_is_left_to_the_general_parser() -> None:
    script = GOLDENS[0].read_text()
    assert _ListingParser(script, GOLDENS[0].name).run_listing() is None


KUBE_TEXT = KUBE.read_text()
SERVICE = "\tchain service-00000000-ns0/svc0/tcp/http {\n"


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda t: t.replace("jump mark-for-masquerade\n", "jump mark-for-masquerade # handle 40\n", 1),
            id="some rules with a handle",
        ),
        pytest.param(lambda t: t.replace("jump mark-for-masquerade", "jump nowhere", 1), id="a jump to no chain"),
        pytest.param(lambda t: t.replace("vmap @service-ips", "vmap @no-such-map"), id="a missing map"),
        pytest.param(lambda t: t.replace(SERVICE, SERVICE + "\t\tfoo bar accept\n", 1), id="an unknown statement"),
        pytest.param(
            lambda t: t.replace(SERVICE, SERVICE + "\t\tlimit rate 5/second accept\n", 1), id="an unmodelled one"
        ),
        pytest.param(lambda t: t.replace(SERVICE, SERVICE + '\t\tcomment "svc"\n', 1), id="a chain's comment"),
        pytest.param(
            lambda t: t.replace(SERVICE, SERVICE + '\t\tcomment "a" comment "b"\n', 1), id="a line of comments only"
        ),
        pytest.param(lambda t: t.replace("priority dstnat;", "priority nowhere;"), id="a bad priority"),
        pytest.param(lambda t: t.replace("type nat hook", "type bogus hook", 1), id="a bad chain type"),
        pytest.param(
            lambda t: t + t[t.index("\tchain services") : t.index("\tchain masquerading")], id="a chain twice"
        ),
        pytest.param(lambda t: t[: len(t) // 2], id="cut in the middle"),
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="CRLF line ends"),
        pytest.param(lambda t: t.replace("tcp dport 80", 'tcp dport "80', 1), id="an unterminated string"),
    ],
)
def test_edited_kube_proxy_listings_give_the_same_model_and_errors_both_ways(edit: Callable[[str], str]) -> None:
    text = edit(KUBE_TEXT)
    assert text != KUBE_TEXT
    _both(text, "kube.list")


def _damage(lines: list[str], rnd: random.Random) -> list[str]:
    """One random change of the kind a hand edit or a truncated copy makes."""
    out = list(lines)
    if not out:
        return out
    n = rnd.randrange(len(out))
    words = out[n].split(" ")
    junk = rnd.choice(["foo", "}", "{", ";", '"', "#", "# handle 9", "\\", "jump nowhere", "@nothing", "vmap", "."])
    k = rnd.randrange(9)
    if k == 0:
        del out[n]
    elif k == 1:
        out.insert(n, out[n])
    elif k == 2:
        words.insert(rnd.randrange(len(words) + 1), junk)
        out[n] = " ".join(words)
    elif k == 3 and len(words) > 1:
        del words[rnd.randrange(len(words))]
        out[n] = " ".join(words)
    elif k == 4:
        out[n] = out[n].replace("jump ", "jump x", 1).replace("goto ", "goto y", 1).replace("@", "@z", 1)
    elif k == 5:
        out[n] = out[n].replace("\t", "  ").replace(" ", "\t", 1)
    elif k == 6:
        out[n] = out[n] + rnd.choice([" ", ";", " counter", " accept", " # a comment", "\r"])
    elif k == 7:
        out = out[: rnd.randrange(len(out))]
    else:
        a, b = n, rnd.randrange(len(out))
        out[a], out[b] = out[b], out[a]
    return out


@pytest.mark.parametrize(
    "name",
    [
        KUBE.name,
        "capture-tproxy.handles",
        "capture-dns-uid-gid.list",
        "cni-hostprobe.list",
        "iptables-nft-tproxy.nft-list",
    ],
)
def test_damaged_listings_give_the_same_model_and_errors_both_ways(name: str) -> None:
    path = FIX / "nftables-listed" / name
    lines = path.read_text().split("\n")
    rnd = random.Random(name)
    for _ in range(250):
        damaged = lines
        for _ in range(rnd.randrange(1, 4)):
            damaged = _damage(damaged, rnd)
        _both("\n".join(damaged), name)


def test_a_bad_rule_after_many_good_ones_is_reported_without_retrying_them() -> None:
    """Each good line could be matched in several ways; a bad last line must not make the check try them all
    (2^60 ways here: the test would not end)."""
    good = '\t\toifname "lo" ip6 daddr != ::1 tcp dport != 15008 meta skgid 2 counter packets 0 bytes 0 return\n'
    text = "table inet t {\n\tchain c {\n" + good * 60 + "\t\ttcp != 15008 accept\n\t}\n}\n"
    _both(text, "bad.list")
    assert parse_nftables(text, "bad.list").errors[0].line == 63
