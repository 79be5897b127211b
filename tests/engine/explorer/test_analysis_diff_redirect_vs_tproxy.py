"""Diffing the REDIRECT example against the TPROXY one lists the mangle TPROXY rules as added and the verdict change."""

from __future__ import annotations

import json

from meshviz.engine.explorer.diff import diff_evidence

from .helpers import REDIRECT, TPROXY_OK, evidence, stored_stories


def test_redirect_to_tproxy() -> None:
    a, b = evidence(REDIRECT), evidence(TPROXY_OK)
    d = diff_evidence(a, b, stored_stories(a), stored_stories(b))
    assert not d.errors
    rs = d.ruleset("ipv4")
    assert rs is not None
    tproxy = rs.chain("mangle", "ISTIO_TPROXY")
    assert tproxy is not None and tproxy.status == "added"
    assert [r.text for r in tproxy.added] == [
        "-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006"
    ]
    assert ("mangle", "ISTIO_TPROXY") in rs.chains_added and ("mangle", "PREROUTING") in rs.chains_added
    nat_pre = rs.chain("nat", "PREROUTING")
    assert nat_pre is not None and [r.text for r in nat_pre.removed] == ["-A PREROUTING -p tcp -j ISTIO_INBOUND"]
    # policy routing only exists on the TPROXY side
    assert any("fwmark 1337" in x for x in d.ip_rules.added)
    # Envoy: virtualInbound gains original_src with mark 1337
    vin = next(x for x in d.envoy.listeners if x.name == "virtualInbound")
    assert {c.field: (c.before, c.after) for c in vin.changes}["original_src"] == (None, 1337)
    # verdicts: paired by connection; the inbound one changes from 127.0.0.6 to the client
    inbound = next(v for v in d.verdicts if v["connection"]["direction"] == "inbound")
    assert inbound["status"] == "both" and inbound["changed"]
    assert inbound["before_verdict"]["app_peer_ip"] == "127.0.0.6"
    assert inbound["after_verdict"]["app_peer_ip"] == inbound["connection"]["client"].rsplit(":", 1)[0]
    assert "app_peer_ip" in inbound["changed_fields"]
    out = json.loads(json.dumps(d.to_dict()))
    assert out["verdicts_changed"] >= 1


def test_identical_evidence_has_no_differences() -> None:
    a = evidence(TPROXY_OK)
    s = stored_stories(a)
    d = diff_evidence(a, a, s, s)
    assert all(r.empty for r in d.rulesets) and d.envoy.empty
    assert not d.ip_rules.added and not d.ip_rules.removed and not d.sysctls
    assert not any(v["changed"] for v in d.verdicts)
