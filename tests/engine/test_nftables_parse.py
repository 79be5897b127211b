"""nftables evidence parses: every Istio nftables golden (nft -f scripts), what nft printed for them (list,
list -a, -j), and errors name the file, line and column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meshviz.engine.nftables.model import Counter, Match, Nat, NftRule, NftRuleset, Selector, Tproxy, Verdict
from meshviz.engine.nftables.parser import parse_nftables

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = sorted((FIX / "istio-nftables").glob("*/*.golden"))
LISTED = sorted((FIX / "nftables-listed").glob("*.list"))


def _kinds(rule: NftRule) -> tuple[str, ...]:
    """The rule's statement kinds; `meta l4proto tcp` before `tcp dport` is left out, as nft's listing leaves
    out the dependency it implies."""
    st = [s for s in rule.statements if not isinstance(s, Counter)]
    keys = {s.left.key for s in st if isinstance(s, Match) and isinstance(s.left, Selector)}
    return tuple(
        type(s).__name__
        for s in st
        if not (
            isinstance(s, Match)
            and s.left == Selector("meta l4proto")
            and any(k.startswith(f"{s.right.text()} ") for k in keys)
        )
    )


def _shape(rs: NftRuleset) -> list[tuple[object, ...]]:
    """Tables, chains (type, hook, priority, policy) and each rule's statement kinds, in order."""
    return [
        (t.family, t.name, c.name, c.type, c.hook, c.priority, c.policy, tuple(_kinds(r) for r in c.rules))
        for t in sorted(rs.tables, key=lambda t: (t.family, t.name))
        for c in sorted(t.chains, key=lambda c: c.name)
    ]


def test_the_corpus_holds_every_istio_nftables_golden() -> None:
    assert len(CORPUS) == 51
    assert len(LISTED) == 38


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_istio_nftables_golden_parses_without_errors(path: Path) -> None:
    r = parse_nftables(path.read_text(), source=str(path))
    assert r.errors == ()
    assert r.format == "script"
    assert r.ruleset.tables
    # Only the host-probe goldens refer to a set the node creates outside the pod's script.
    assert all("istio-inpod-probes" in w.message for w in r.warnings)


@pytest.mark.parametrize("path", LISTED, ids=lambda p: p.stem)
def test_what_nft_printed_parses_the_same_in_every_form(path: Path) -> None:
    forms = {
        ext: parse_nftables(path.with_suffix(ext).read_text(), source=ext) for ext in (".list", ".handles", ".json")
    }
    for r in forms.values():
        assert r.errors == ()
    assert forms[".list"].format == "list" and forms[".json"].format == "json"
    listed = forms[".list"].ruleset
    assert _shape(listed) == _shape(forms[".handles"].ruleset) == _shape(forms[".json"].ruleset)
    assert [r.text() for r in listed.rules()] == [r.text() for r in forms[".handles"].ruleset.rules()]
    assert all(r.handle is not None for r in forms[".handles"].ruleset.rules())


@pytest.mark.parametrize("path", LISTED, ids=lambda p: p.stem)
def test_a_golden_script_builds_the_ruleset_nft_lists_for_it(path: Path) -> None:
    """`add`/`insert rule ... index N` applied in order give the chains nft itself printed."""
    kind, _, name = path.stem.partition("-")
    script = FIX / "istio-nftables" / kind / f"{name}.golden"
    built = parse_nftables(script.read_text(), source=str(script)).ruleset
    listed = parse_nftables(path.read_text(), source=str(path)).ruleset
    assert _shape(built) == _shape(listed) or name.startswith("hostprobe")


def test_insert_index_places_the_rule_before_that_position() -> None:
    text = (
        "add table inet t\nadd chain inet t c\nadd rule inet t c tcp dport 1 accept\nadd rule inet t c tcp dport 2 accept\n"
        "insert rule inet t c index 0 tcp dport 0 accept\ninsert rule inet t c index 2 tcp dport 9 drop\n"
        "insert rule inet t c tcp dport 7 return\n"
    )
    r = parse_nftables(text)
    assert r.errors == ()
    chain = r.ruleset.tables[0].chains[0]
    assert [rule.text() for rule in chain.rules] == [
        "tcp dport 7 return",
        "tcp dport 0 accept",
        "tcp dport 1 accept",
        "tcp dport 9 drop",
        "tcp dport 2 accept",
    ]


def test_flush_table_empties_its_chains_and_delete_rule_removes_by_handle() -> None:
    text = (
        "table ip t {\n\tchain c { # handle 1\n\t\ttcp dport 80 accept # handle 5\n\t\ttcp dport 81 drop # handle 6\n\t}\n}\n"
        "delete rule ip t c handle 5\n"
    )
    r = parse_nftables(text)
    assert r.errors == ()
    assert [x.text() for x in r.ruleset.rules()] == ["tcp dport 81 drop"]
    r2 = parse_nftables(text + "flush table ip t\n")
    assert r2.ruleset.rule_count() == 0


def test_statements_are_typed() -> None:
    r = parse_nftables(
        "add table inet m\nadd chain inet m p { type filter hook prerouting priority mangle ; policy drop ; }\n"
        "add rule inet m p meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to :15006 meta mark set 1337 "
        "counter accept\n"
        "add rule inet m p ct state established,related meta mark & 0xfff != 0x539 redirect to :15001\n"
    )
    assert r.errors == ()
    chain = r.ruleset.tables[0].chains[0]
    assert (chain.type, chain.hook, chain.priority, chain.policy) == ("filter", "prerouting", -150, "drop")
    first, second = chain.rules
    assert [type(s) for s in first.statements] == [Match, Match, Tproxy, type(first.statements[3]), Counter, Verdict]
    assert first.statements[2] == Tproxy("ip", None, 15006)
    assert second.statements[-1] == Nat("redirect", None, None, 15001)


def test_sets_maps_and_concatenations_are_read_from_a_listing() -> None:
    text = """table ip kube-proxy {
    map service-ips {
        type ipv4_addr . inet_proto . inet_service : verdict
        elements = { 172.16.0.10 . tcp . 80 : goto svc-a,
                 172.16.0.11 . tcp . 443 : jump svc-b }
    }

    set allowed {
        type ipv4_addr
        flags interval
        elements = { 10.0.0.0/8, 192.168.1.1-192.168.1.9 }
    }

    chain services {
        ip daddr . meta l4proto . th dport vmap @service-ips
        ip saddr @allowed accept
    }

    chain svc-a {
    }

    chain svc-b {
    }
}
"""
    r = parse_nftables(text)
    assert r.errors == ()
    t = r.ruleset.tables[0]
    m = t.set("service-ips")
    assert m is not None and m.is_map and len(m.elements) == 2
    assert m.elements[1].text() == "172.16.0.11 . tcp . 443 : jump svc-b"
    s = t.set("allowed")
    assert s is not None and s.flags == ("interval",) and len(s.elements) == 2


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("add table inet t\nadd chain inet t c\nadd rule inet t c tcp dport 80 frobnicate\n", 3, 32, "frobnicate"),
        ("add table inet t\nadd chain inet t c\nadd rule inet t c jump nowhere\n", 3, 1, "nowhere"),
        ("add rule inet t c accept\n", 1, 5, "table inet t does not exist"),
        ("table inet t {\n\tchain c {\n\t\tmeta frob 1 accept\n\t}\n}\n", 3, 8, "unknown meta key"),
        ("add table inet t\nadd chain inet t c { type nat hook prerouting ; }\n", 2, 22, "priority"),
        ('{"nftables": [{"rule": {"family": "ip"}}]}', 1, 1, "missing"),
        ('{"nftables": [', 1, 15, "Expecting value"),
        ("hello world\n", 1, 1, "expected a command"),
    ],
)
def test_bad_input_is_an_error_with_line_column_and_text(text: str, line: int, column: int, message: str) -> None:
    r = parse_nftables(text, source="pod.nft")
    assert r.errors, text
    e = r.errors[0]
    assert (e.source, e.line, e.column) == ("pod.nft", line, column)
    assert message in e.message
    assert e.text == text.splitlines()[line - 1].strip()[:120] or text.startswith("{")


def test_unmodelled_statements_are_kept_with_their_reason() -> None:
    r = parse_nftables("add table ip t\nadd chain ip t c\nadd rule ip t c tcp dport 22 limit rate 3/second accept\n")
    assert r.errors == ()
    st = r.ruleset.rules()[0].statements
    assert st[-1].text() == "limit rate 3/second accept"
    assert "rate limits not modelled" in st[-1].why  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["json", "summary"])
def test_cli_parses_nftables(fmt: str) -> None:
    path = FIX / "nftables-listed" / "capture-tproxy.handles"
    out = subprocess.run(
        [sys.executable, "-m", "meshviz.engine", "parse", str(path), "--kind", "nftables", "--format", fmt],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if fmt == "json":
        doc = json.loads(out)
        assert [t["name"] for t in doc["tables"]] == ["istio-proxy-nat", "istio-proxy-mangle", "istio-proxy-raw"]
        assert doc["tables"][1]["chains"][0]["priority"] == -150
    else:
        assert "table inet istio-proxy-mangle: 5 chains" in out


def test_cli_reports_a_parse_error_with_exit_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nft"
    bad.write_text("add table inet t\nadd chain inet t c\nadd rule inet t c tcp dport 80 frobnicate\n")
    p = subprocess.run(
        [sys.executable, "-m", "meshviz.engine", "parse", str(bad), "--kind", "nftables", "--format", "summary"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert f"{bad}:3:32" in p.stderr
