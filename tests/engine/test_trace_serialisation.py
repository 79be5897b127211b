"""Traces serialise to JSON and back without loss."""

import json

from meshviz.engine.core.trace import Trace

from .helpers import CLIENT, POD, pod, receive, tcp

RULES = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j MARK --set-mark 0x539
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j REDIRECT --to-ports 15006
COMMIT
"""


def test_trace_json_round_trip_is_lossless() -> None:
    t = receive(pod(RULES), tcp(CLIENT, 40000, POD, 80))
    data = json.loads(json.dumps(t.to_dict()))
    back = Trace.from_dict(data)
    assert back == t
    assert back.to_dict() == t.to_dict()
