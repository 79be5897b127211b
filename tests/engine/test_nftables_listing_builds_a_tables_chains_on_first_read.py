"""A listing's checked chains are kept as offsets into the text (`listing.ChainRecords`) and built on first read
(`parser.ListingChains`): counting, the summary, the base chains and the hooks build none of them; a chain looked
up by name is built alone and is the very chain the whole tuple holds later; whatever is built is what the
general parser gives; a chain read at once still has its references checked when the table's text search found
nothing missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from meshviz.engine.nftables.hooks import NftHooks
from meshviz.engine.nftables.model import NftParseResult
from meshviz.engine.nftables.parser import ListingChains, parse_nftables
from meshviz.engine.nftables.serialize import nft_summary

LISTED = Path(__file__).resolve().parents[1] / "fixtures" / "nftables-listed"
KUBE = (LISTED / "kube-proxy-20-services.nft-list").read_text()
ENDPOINT = "endpoint-0000000000-ns0/svc0/tcp/http__10.0.0.2/8080"


def _fast(text: str) -> NftParseResult:
    result = parse_nftables(text, "kube.list")
    assert all(isinstance(t.pending_chains(), ListingChains) for t in result.ruleset.tables)
    return result


def test_counts_the_summary_the_base_chains_and_the_hooks_build_no_chain() -> None:
    fast, full = _fast(KUBE), parse_nftables(KUBE, "kube.list", fast_listing=False)
    table, general = fast.ruleset.tables[0], full.ruleset.tables[0]
    assert nft_summary(fast) == nft_summary(full)
    assert table.chain_count() == len(general.chains)
    assert table.rule_count() == sum(c.rule_count() for c in general.chains)
    assert table.unmodelled_count() == 0 == general.unmodelled_count()
    assert table.base_chains() == general.base_chains()
    assert [c.name for c in table.base_chains()] == ["nat-prerouting", "nat-output", "nat-postrouting"]
    assert NftHooks(fast.ruleset)
    index = table.pending_chains()
    assert isinstance(index, ListingChains)
    assert set(index.built) == set(index.eager)  # only the chains the parser read itself exist as objects


def test_a_chain_looked_up_by_name_is_built_alone_and_is_the_one_the_tuple_holds() -> None:
    table = _fast(KUBE).ruleset.tables[0]
    general = parse_nftables(KUBE, "kube.list", fast_listing=False).ruleset.tables[0]
    index = table.pending_chains()
    assert isinstance(index, ListingChains)
    before = len(index.built)
    chain = table.chain(ENDPOINT)
    assert chain is not None and len(index.built) == before + 1
    assert table.chain("no-such-chain") is None
    assert chain == general.chain(ENDPOINT)  # name, rules (read now), handles, source line and text
    assert chain.rules and chain.ref is not None and chain.ref.text == f"chain {ENDPOINT} {{"
    assert any(c is chain for c in table.chains)  # the whole tuple, built now, holds the same object
    assert table.pending_chains() is None and table.chain(ENDPOINT) is chain
    assert table.chains == general.chains


def test_lazily_built_chains_and_their_rules_are_the_general_parsers_in_several_tables() -> None:
    tproxy = (LISTED / "capture-tproxy.list").read_text()
    text = KUBE + tproxy + KUBE.replace("table ip kube-proxy", "table ip6 kube-proxy")
    fast, full = _fast(text), parse_nftables(text, "kube.list", fast_listing=False)
    assert [(t.label, t.chain_count(), t.rule_count()) for t in fast.ruleset.tables] == [
        (t.label, len(t.chains), sum(len(c.rules) for c in t.chains)) for t in full.ruleset.tables
    ]
    assert fast.ruleset.rules() == full.ruleset.rules()  # handles numbered across tables as the general parser does
    assert fast == full


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            ("jump mark-for-masquerade\n", "jump  nowhere\n"), "jump to chain 'nowhere'", id="a jump spelled apart"
        ),
        pytest.param(("jump mark-for-masquerade\n", "jump nowhere\n"), "jump to chain 'nowhere'", id="a jump"),
        pytest.param(("vmap @service-ips", "vmap  @nothing"), "@nothing", id="a map spelled apart"),
    ],
)
def test_a_missing_chain_or_map_named_in_a_chain_read_at_once_is_reported_as_the_general_parser_does(
    edit: tuple[str, str], message: str
) -> None:
    """Two spaces make the chain one the listing parser reads at once, and hide a jump's target from the search
    of the table's text for missing names (`jump X`); the chain's references are checked all the same."""
    text = KUBE.replace(*edit, 1)
    fast, full = parse_nftables(text, "kube.list"), parse_nftables(text, "kube.list", fast_listing=False)
    said = [*fast.errors, *fast.warnings]
    assert any(message in e.message for e in said), said
    assert fast.errors == full.errors and fast.warnings == full.warnings
    assert fast == full


MASQ = "\tchain masquerading {\n"


def _runs(text: str) -> list[tuple[int, int, int, int, int, int]]:
    index = parse_nftables(text, "kube.list").ruleset.tables[0].pending_chains()
    assert isinstance(index, ListingChains)
    return list(index.records.runs)


def test_kube_proxys_chains_are_read_as_runs_counted_and_named_without_being_located() -> None:
    runs = _runs(KUBE)
    assert runs and sum(size for _, size, *_ in runs) > 50  # most chains, in a few runs
    table = parse_nftables(KUBE, "kube.list").ruleset.tables[0]
    index = table.pending_chains()
    assert isinstance(index, ListingChains) and index.records.runs
    assert table.chain_count() == len(index.records.names) and table.rule_count()
    assert index.records.runs  # counting located nothing
    assert table.chain(ENDPOINT) is not None and not index.records.runs  # the first chain built locates them all


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.replace(MASQ, "\n\n" + MASQ, 1), id="two empty lines before a chain"),
        pytest.param(lambda t: t.replace(MASQ, " \t\n" + MASQ, 1), id="a blank line of white space"),
        pytest.param(lambda t: t.replace(MASQ, MASQ.replace("\t", "    "), 1), id="a header indented by spaces"),
        pytest.param(lambda t: t.replace(MASQ, MASQ.replace(" {", "  {"), 1), id="two spaces before the brace"),
        pytest.param(
            lambda t: t.replace("\t\tmasquerade fully-random\n", "    masquerade fully-random \n"), id="a rule"
        ),
        pytest.param(lambda t: t.replace(MASQ, MASQ + "\n", 1), id="an empty line in a chain"),
        pytest.param(lambda t: t.replace(MASQ, MASQ + "\t\tlimit rate 5/second accept\n", 1), id="an unmodelled rule"),
        pytest.param(lambda t: t.replace(MASQ, MASQ + "\t\tfoo bar\n", 1), id="a bad rule"),
        pytest.param(lambda t: t.replace("\t}\n\n\tchain masq", "    }\n\n\tchain masq", 1), id="a closing brace"),
        pytest.param(lambda t: t.replace(MASQ, MASQ + '\t\tcomment "\tchain x {"\n', 1), id="a header in a string"),
        pytest.param(
            lambda t: t.replace(MASQ, "\tchain mark-for-masquerade {\n\t}\n\n" + MASQ, 1), id="a chain twice in runs"
        ),
        pytest.param(lambda t: t.replace(MASQ, "\tchain services {\n\t}\n" + MASQ, 1), id="a chain twice"),
        pytest.param(lambda t: t.replace(MASQ, "\tchain empty {\n\t}\n" + MASQ, 1), id="an empty chain"),
        pytest.param(lambda t: t.replace("\n}\n", "\n}\n\n\n" + t, 1), id="the table again after blank lines"),
        pytest.param(lambda t: t + t.replace("table ip ", "table inet ", 1), id="two tables"),
    ],
)
def test_a_run_broken_anywhere_gives_the_general_parsers_model_lines_and_handles(edit: Callable[[str], str]) -> None:
    text = edit(KUBE)
    assert text != KUBE
    fast, full = parse_nftables(text, "kube.list"), parse_nftables(text, "kube.list", fast_listing=False)
    assert nft_summary(fast) == nft_summary(full)
    assert fast.errors == full.errors and fast.warnings == full.warnings
    assert fast == full
    assert [(r.handle, r.ref) for r in fast.ruleset.rules()] == [(r.handle, r.ref) for r in full.ruleset.rules()]
    assert [c.ref for t in fast.ruleset.tables for c in t.chains] == [
        c.ref for t in full.ruleset.tables for c in t.chains
    ]
