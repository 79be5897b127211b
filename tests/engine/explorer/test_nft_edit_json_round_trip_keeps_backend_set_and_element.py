"""nft what-if edits in the iptables edit format: `backend`, `set` and `element` survive the JSON round trip, an
unknown backend is an error naming the edit."""

from __future__ import annotations

from meshviz.engine.explorer.edits import Edit, parse_edits
from meshviz.engine.explorer.whatif import apply_edits

from .nft_support import TPROXY_LIST, nft_evidence


def test_round_trip() -> None:
    items = [
        {
            "op": "insert",
            "backend": "nft",
            "table": "inet istio-proxy-nat",
            "chain": "output",
            "index": 1,
            "rule": "accept",
        },
        {"op": "add_element", "table": "ip kube-proxy", "set": "service-ips", "element": "10.0.0.1 . tcp . 80 : drop"},
        {"op": "policy", "family": "inet", "table": "istio-proxy-mangle", "chain": "prerouting", "value": "drop"},
    ]
    edits, errors = parse_edits(items)
    assert errors == [] and [e.to_dict() for e in edits] == items
    assert Edit.from_dict(items[1]).describe() == "add element 10.0.0.1 . tcp . 80 : drop in ip kube-proxy @service-ips"


def test_an_unknown_backend_is_refused() -> None:
    edit = Edit(op="delete", backend="pf", table="inet istio-proxy-nat", chain="output", index=1)
    [error] = apply_edits(nft_evidence(TPROXY_LIST), [edit]).errors
    assert error.source == "edit 1" and "unknown backend 'pf'" in error.message
