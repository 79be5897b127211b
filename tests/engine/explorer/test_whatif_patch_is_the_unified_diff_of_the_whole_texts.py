"""A what-if's patch diffs only the part of the evidence that changed (issue 15: difflib over a node's 109,000 lines
took a second per edit), and it is the same unified diff difflib gives for the whole texts."""

from __future__ import annotations

import difflib

import pytest

from meshviz.engine.explorer.whatif import _split, _unified_diff

LINES = [f"-A KUBE-SVC-{i:04d} -p tcp -j KUBE-SEP-{i:04d}\n" for i in range(150)]


def whole(a: list[str], b: list[str]) -> list[str]:
    return list(difflib.unified_diff(a, b, "a/iptables-save", "b/iptables-save"))


@pytest.mark.parametrize(
    "edit",
    [
        lambda ls: ["-A NEW -j RETURN\n", *ls],  # at the start
        lambda ls: [*ls[:70], "-A NEW -j RETURN\n", *ls[70:]],  # in the middle
        lambda ls: [*ls, "-A NEW -j RETURN\n"],  # at the end
        lambda ls: ls[:40] + ls[41:],  # a deletion
        lambda ls: [*ls[:100], "-A CHANGED -j DROP\n", *ls[101:]],  # a replacement
        lambda ls: [*ls[:10], "-A ONE\n", *ls[10:140], "-A TWO\n", *ls[140:]],  # two hunks
        lambda ls: [*ls[:2], "-A NEAR\n", *ls[2:]],  # within the context of the first line
        lambda ls: ls[:149],  # the last line removed
        lambda ls: [],  # everything removed
    ],
)
def test_the_patch_is_difflibs_diff_of_the_whole_texts(edit: object) -> None:
    after = edit(list(LINES))  # type: ignore[operator]
    assert _unified_diff(LINES, after, "a/iptables-save", "b/iptables-save") == whole(LINES, after)


def test_a_missing_last_newline_is_diffed_as_difflib_does() -> None:
    before = _split("".join(LINES).rstrip("\n"))
    after = _split("".join(LINES[:120]) + "-A NEW\n" + "".join(LINES[120:]).rstrip("\n"))
    assert _unified_diff(before, after, "a/x", "b/x") == list(difflib.unified_diff(before, after, "a/x", "b/x"))
