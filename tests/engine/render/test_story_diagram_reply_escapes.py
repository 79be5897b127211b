"""No policy route for mark 1337: the application's SYN-ACK leaves via eth0 - red, dashed, into eth0."""

from meshviz.engine.render.dot import RED
from meshviz.engine.render.story_dot import story_to_dot

from ..fix.helpers import IP_ROUTE_NONE, IP_RULE_NONE
from .helpers import needs_dot, svg_of, svg_text, tproxy_story


def _story_dot() -> str:
    return story_to_dot(tproxy_story(ip_rule=IP_RULE_NONE, ip_route=IP_ROUTE_NONE))


def test_the_escaping_reply_is_red_into_and_out_of_eth0() -> None:
    dot = _story_dot()
    eth0 = [
        line.split()[0] for line in dot.splitlines() if "eth0 (egress)" in line and RED in line and " -> " not in line
    ]
    assert len(eth0) == 1, "exactly one eth0 node is the failure (the client's SYN-ACK leaving via eth0 is fine)"
    red = [line for line in dot.splitlines() if " -> " in line and RED in line]
    assert any(line.split()[2] == eth0[0] for line in red), "the edge into eth0 is red"
    assert any(line.split()[0] == eth0[0] and "escapes via eth0" in line for line in red)
    assert all('style="dashed,bold"' in line for line in red), "it is the reply path"


@needs_dot
def test_svg_says_the_reply_escapes() -> None:
    text = svg_text(svg_of(_story_dot()))
    assert "REPLY_ESCAPES_VIA_eth0" in text
    assert "the reply escapes via eth0" in text
