"""A UDP story drawn: the query from the application to the DNS proxy, then - under the reply heading, dashed - the
answer from the DNS proxy back to the application's socket."""

from __future__ import annotations

from pathlib import Path

from meshviz.engine.pipeline.pod import run_story
from meshviz.engine.render.flowchart import flow_of, story_to_flow_dot
from meshviz.engine.story.model import Story

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "istio-nftables" / "capture" / "dns-uid-gid.golden"


def test_the_answer_of_a_captured_dns_query_is_drawn_as_the_reply_from_the_dns_proxy() -> None:
    r = run_story(
        nftables=GOLDEN.read_text(),
        pod_ip="10.0.0.10",
        direction="udp",
        dst="127.0.0.53:53",
        app_uid=1000,
        app_gid=1000,
    )
    assert r.story is not None
    flow = flow_of(Story.from_dict(r.story.to_dict()))
    (heading,) = [i for i, row in enumerate(flow.rows) if row.kind == "heading"]
    query, answer = flow.rows[:heading], flow.rows[heading + 1 :]
    assert flow.rows[heading].label == "reply path: the answer back to the sender (dashed)"
    assert query[0].lane == "application" and "DNS proxy" in query[-1].label
    assert not any(row.reply for row in query) and all(row.reply for row in answer)
    assert "DNS proxy" in answer[0].label and "the application" in answer[-1].label
    assert "digraph" in story_to_flow_dot(r.story)
