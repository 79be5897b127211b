"""compare_to_dot: REDIRECT | TPROXY side by side for one connection, differences highlighted."""

import pytest

from meshviz.engine.fix.compare import compare
from meshviz.engine.render.dot import DIFF_FILL
from meshviz.engine.render.story_dot import compare_to_dot

from ..fix.helpers import CLIENT, PORT, tproxy_evidence
from .helpers import needs_dot, svg_of, svg_text


def _comparison() -> dict:
    return compare(tproxy_evidence(app_ports=(PORT,)), [(CLIENT, PORT)])


def test_two_clusters_with_differing_rows_highlighted() -> None:
    out = _comparison()
    dot = compare_to_dot(out)
    assert "subgraph cluster_0 " in dot and "subgraph cluster_1 " in dot
    assert dot.index("<b>REDIRECT</b>") < dot.index("<b>TPROXY</b>"), "REDIRECT on the left"
    rows = out["connections"][0]["rows"]
    differing = [i for i, row in enumerate(rows) if row["differs"]]
    assert differing
    for i in differing:
        assert f"r0_{i} [label=" in dot and DIFF_FILL in next(x for x in dot.splitlines() if f"r0_{i} [" in x)
        assert f"r0_{i} -> r1_{i}" in dot
    same = [i for i, row in enumerate(rows) if not row["differs"]]
    for i in same:
        assert DIFF_FILL not in next(x for x in dot.splitlines() if f"r0_{i} [" in x)


def test_unknown_connection_index() -> None:
    with pytest.raises(ValueError, match="no connection #3"):
        compare_to_dot(_comparison(), 3)


@needs_dot
def test_compare_svg_shows_both_app_peers() -> None:
    text = svg_text(svg_of(compare_to_dot(_comparison())))
    assert "127.0.0.6" in text and "10.1.1.1" in text
    assert "aspects differ" in text
