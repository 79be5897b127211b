"""Without CONNMARK --restore-mark the reply has no mark: the fix adds the rule (command and restore fragment)."""

from meshviz.engine.fix.plans import fix

from .helpers import CLIENT, PORT, TPROXY_RULES, tproxy_evidence

NO_RESTORE = "\n".join(line for line in TPROXY_RULES.splitlines() if "--restore-mark" not in line) + "\n"


def test_fix_adds_the_restore_rule() -> None:
    r = fix(tproxy_evidence(iptables=NO_RESTORE), client=CLIENT, port=PORT)
    assert r.before["failure"] == "REPLY_ESCAPES_VIA_eth0"
    assert r.works
    (rep,) = r.repairs
    assert rep.key == "connmark-restore"
    kinds = {a.kind: a.content for a in rep.artifacts}
    assert kinds["iptables"] == "iptables -t mangle -A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark"
    assert kinds["iptables-restore"].startswith("*mangle\n-A OUTPUT") and kinds["iptables-restore"].endswith("COMMIT\n")
    assert "--restore-mark" in r.to_dict()["patched"]["iptables_save"]


def test_nothing_to_fix_when_the_goal_is_met() -> None:
    r = fix(tproxy_evidence(), client=CLIENT, port=PORT)
    assert r.works and not r.repairs
    assert r.before == r.after
