"""A ruleset file read a block at a time (`core.textfile.TextFile`, `parse_iptables_pieces`: what `parse F --format
summary` does, so that the fast path holds its index and not the text) parses exactly as its whole text does: the
same model, errors, warnings and format, whatever the block size - blocks cutting lines, CR LF line ends, bytes that
are not UTF-8 and characters split between blocks included.  A file that changes after it was read and before its
rules are built is refused (`SourceChanged`), never read at the wrong offsets."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshviz.engine.core.textfile import SourceChanged, TextFile
from meshviz.engine.netfilter.parser import parse_iptables, parse_iptables_pieces
from meshviz.engine.netfilter.serialize import parse_summary

from .test_iptables_fast_path_gives_exactly_the_full_parsers_result import (
    CORPUS_FILES,
    OTHER_FILES,
    assert_same,
    kube_proxy_rules,
    kube_proxy_rules_v6,
    mutate,
)

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = [1, 7, 64, 4096]


def in_pieces(path: Path, block: int, strict: bool = True):  # type: ignore[no-untyped-def]
    f = TextFile(path, block=block)
    return parse_iptables_pieces(f.pieces(), f.text, source="t.rules", strict=strict)


def whole(path: Path, strict: bool = True):  # type: ignore[no-untyped-def]
    return parse_iptables(path.read_text(encoding="utf-8", errors="replace"), source="t.rules", strict=strict)


@pytest.mark.parametrize("path", CORPUS_FILES[::3] + OTHER_FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_corpus_and_example_files_read_in_pieces_parse_as_their_whole_text(path: Path, tmp_path: Path):
    copy = tmp_path / "t.rules"
    copy.write_bytes(path.read_bytes())
    for block in (64, 4096):
        assert_same(in_pieces(copy, block), whole(copy))


@pytest.mark.parametrize("block", BLOCKS)
def test_a_kube_proxy_ruleset_read_in_pieces_of_any_size_takes_the_fast_path_and_parses_as_its_whole_text(
    block: int, tmp_path: Path
):
    path = tmp_path / "t.rules"
    path.write_text(kube_proxy_rules(60))
    got = in_pieces(path, block)
    assert got.ok and parse_summary(got)["rules"] > 100
    assert_same(got, whole(path))


def test_a_dual_stack_ruleset_read_in_pieces_parses_as_its_whole_text(tmp_path: Path):
    path = tmp_path / "t.rules"
    path.write_text(kube_proxy_rules(30) + kube_proxy_rules_v6(30))
    got = in_pieces(path, 4096)
    assert [rs.family.value for rs in got.rulesets] == ["ipv4", "ipv6"]
    assert_same(got, whole(path))


@pytest.mark.parametrize("seed", range(12))
def test_mutated_rulesets_with_crlf_and_no_final_newline_read_in_pieces_give_the_same_errors_and_model(
    seed: int, tmp_path: Path
):
    text = mutate(kube_proxy_rules(20, seed), seed, rate=0.03)
    if seed % 2:
        text = text.replace("\n", "\r\n")
    if seed % 3 == 0:
        text = text.rstrip("\n")
    path = tmp_path / "t.rules"
    path.write_bytes(text.encode())
    for strict in (True, False):
        assert_same(in_pieces(path, BLOCKS[seed % len(BLOCKS)], strict), whole(path, strict))


def test_bytes_that_are_not_utf8_and_characters_split_between_blocks_read_as_the_whole_text(tmp_path: Path):
    text = kube_proxy_rules(5).replace('"kubernetes service portals"', '"portails de service \u00e9t\u00e9 \u2603"')
    data = text.encode().replace(b"KUBE-POSTROUTING -j MARK", b"KUBE-POSTROUTING \xff\xfe -j MARK")
    path = tmp_path / "t.rules"
    path.write_bytes(data)
    for block in (1, 3, 5, 64):
        assert_same(in_pieces(path, block), whole(path))


@given(st.binary(max_size=300), st.integers(1, 40))
@settings(max_examples=150)
def test_pieces_join_into_exactly_what_read_text_with_replacement_gives(data: bytes, block: int) -> None:
    path = Path(f"/tmp/meshviz-textfile-{block}-{random.random()}.bin")
    try:
        path.write_bytes(data.replace(b"\x00", b"\n"))
        f = TextFile(path, block=block)
        pieces = list(f.pieces())
        assert all(p.endswith("\n") for p in pieces[:-1])
        assert "".join(pieces) == path.read_text(encoding="utf-8", errors="replace") == f.text()
    finally:
        path.unlink()


def test_a_file_changed_before_its_rules_are_built_is_refused_not_read_at_the_wrong_offsets(tmp_path: Path):
    path = tmp_path / "t.rules"
    path.write_text(kube_proxy_rules(10))
    got = in_pieces(path, 4096)
    path.write_text(kube_proxy_rules(10).replace("KUBE-SVC", "KUBE-SVX"))
    with pytest.raises(SourceChanged, match="changed while it was being read"):
        _ = got.rulesets[0].tables[0].chains
    path.write_text(kube_proxy_rules(10))  # the same bytes again, but written after the read: still refused
    with pytest.raises(SourceChanged):
        _ = got.rulesets[0].tables[0].chains
    untouched = in_pieces(path, 4096)  # a file left alone is read again when its rules are built
    assert_same(untouched, whole(path))


def test_the_clis_summary_of_a_file_is_the_summary_of_its_whole_text(tmp_path: Path):
    path = tmp_path / "t.rules"
    path.write_text(kube_proxy_rules(30))
    run = subprocess.run(
        [sys.executable, "-m", "meshviz.engine", "parse", str(path), "--format", "summary"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    expected = "".join(f"{k}: {v}\n" for k, v in parse_summary(whole(path)).items())
    assert run.stdout == expected


def test_the_clis_summary_of_a_file_with_errors_prints_the_full_parsers_errors(tmp_path: Path):
    path = tmp_path / "t.rules"
    path.write_text(kube_proxy_rules(3).replace("--dport 80 -j KUBE-SVC-0000000000000001", "--dport 80 -j NOPE"))
    run = subprocess.run(
        [sys.executable, "-m", "meshviz.engine", "parse", str(path), "--format", "summary"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2
    errors = whole(path).errors
    assert errors and run.stderr == "".join(str(e).replace("t.rules", str(path)) + "\n" for e in errors)


def test_a_pipe_such_as_a_process_substitution_is_read_whole_with_the_full_parsers_errors(tmp_path: Path):
    text = kube_proxy_rules(3).replace("--dport 80 -j KUBE-SVC-0000000000000001", "--dport 80 -j NOPE")
    run = subprocess.run(
        ["bash", "-c", 'exec "$0" -m meshviz.engine parse <(cat "$1") --format summary', sys.executable, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2, run.stderr
    assert "Couldn't load target `NOPE'" in run.stderr and "changed while it was being read" not in run.stderr
