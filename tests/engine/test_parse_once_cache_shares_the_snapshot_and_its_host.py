"""Issue 15: the same evidence is parsed once and its Host indexed once (meshviz.engine.pipeline.parsecache), and what the
story says does not depend on whether the parse came from the cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshviz.engine.pipeline import parsecache
from meshviz.engine.pipeline.evidence import Evidence, connection_story, pod_of
from meshviz.engine.pipeline.load import load_snapshot
from meshviz.engine.sim import simulate as simulate_module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
COMMIT
"""


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    parsecache.cache_clear()
    yield
    parsecache.cache_clear()


def test_the_same_evidence_gives_the_same_parse_and_host() -> None:
    a = parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.10")
    b = parsecache.parse_once(iptables=RULES[:-1] + "\n", pod_ip="10.0.0.10")  # equal text, another object
    assert a is b
    assert a.host() is b.host() is simulate_module.host_for(a.snapshot)
    assert parsecache.cache_info()["hits"] == 1
    assert not a.errors


def test_the_parse_is_what_load_snapshot_gives() -> None:
    parsed = parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.10")
    fresh = load_snapshot(iptables=RULES, pod_ip="10.0.0.10")
    assert parsed.snapshot == fresh.snapshot
    assert (parsed.errors, parsed.warnings) == (fresh.errors, fresh.warnings)


def test_other_arguments_are_other_entries() -> None:
    a = parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.10")
    assert parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.11") is not a
    assert parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.10", sources={"iptables": "x"}) is not a
    assert parsecache.parse_once(iptables=RULES, ip_rule="", pod_ip="10.0.0.10") is not a


def test_a_given_key_stands_for_the_texts() -> None:
    a = parsecache.parse_once(key="sha-1", iptables=RULES, pod_ip="10.0.0.10")
    assert parsecache.parse_once(key="sha-1", iptables=RULES, pod_ip="10.0.0.10") is a
    assert parsecache.parse_once(key="sha-2", iptables=RULES, pod_ip="10.0.0.10") is not a


def test_entries_are_dropped_oldest_first_by_count_and_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsecache, "MAX_ENTRIES", 2)
    first = parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.1")
    parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.2")
    parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.3")
    assert parsecache.cache_info()["entries"] == 2
    assert parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.1") is not first
    monkeypatch.setattr(parsecache, "MAX_TEXT_BYTES", len(RULES))
    parsecache.parse_once(iptables=RULES, pod_ip="10.0.0.4")
    assert parsecache.cache_info()["entries"] == 1  # the newest is kept even alone over the budget


def test_unknown_evidence_is_refused() -> None:
    with pytest.raises(TypeError):
        parsecache.parse_once(iptable=RULES)


def _evidence() -> Evidence:
    envoy = (FIXTURES / "envoy" / "istio-1.4-sidecar-productpage.json").read_text()
    return Evidence(iptables=RULES, envoy=envoy, pod_ip="10.0.0.10")


def test_stories_of_one_evidence_parse_and_index_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ev = _evidence()
    conn = {"direction": "inbound", "client": "10.255.0.1:40000", "port": 9080}
    cold = connection_story(ev, conn)
    built: list[object] = []
    real_host = simulate_module.Host

    def counting_host(*args: object, **kwargs: object) -> object:
        built.append(args)
        return real_host(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(simulate_module, "Host", counting_host)
    pod_of.cache_clear()
    warm = connection_story(ev, conn)
    again = connection_story(ev, {**conn, "port": 9081})
    assert built == []  # neither story indexed the chains again
    assert warm == cold
    assert again.summary
    assert parsecache.cache_info()["misses"] == 1


def test_a_story_from_the_cache_is_the_story_from_a_fresh_parse() -> None:
    ev = _evidence()
    conn = {"direction": "inbound", "client": "10.255.0.1:40000", "port": 9080}
    cached = connection_story(ev, conn)
    connection_story(ev, conn)
    parsecache.cache_clear()
    simulate_module._HOSTS.clear()
    pod_of.cache_clear()
    fresh = connection_story(ev, conn)
    assert cached == fresh


def test_evidence_key_is_a_hash_of_the_texts_and_arguments() -> None:
    k = parsecache.evidence_key(iptables=RULES, pod_ip="10.0.0.10")
    assert k == parsecache.evidence_key(iptables=RULES[:-1] + "\n", pod_ip="10.0.0.10")
    assert len(k) == 64
    assert k != parsecache.evidence_key(iptables=RULES + "#", pod_ip="10.0.0.10")
    assert k != parsecache.evidence_key(iptables=RULES, pod_ip="10.0.0.11")
    assert k != parsecache.evidence_key(iptables=RULES, ip_rule="", pod_ip="10.0.0.10")


def test_the_comparison_and_the_repairs_share_one_parse_of_the_rules() -> None:
    from meshviz.engine.fix import modes
    from meshviz.engine.fix import result as fix
    from meshviz.engine.pipeline import rulescache

    rulescache.rules_cache_clear()
    assert fix._parsed(RULES) is parsecache.rules_once(RULES)
    modes.settings_from_rules(RULES, [])
    assert rulescache.rules_cache_info()["misses"] == 1


def test_the_snapshot_the_comparison_and_the_validation_share_one_parse_of_the_rules() -> None:
    from meshviz.engine.pipeline import rulescache

    parsecache.cache_clear()
    rulescache.rules_cache_clear()
    validated = rulescache.iptables_once(RULES, source="iptables")  # what an upload's validation parses
    snapshot = parsecache.parse_once(iptables=RULES[:-1] + "\n", pod_ip="10.0.0.10").snapshot  # equal text
    assert snapshot.rulesets == validated.rulesets
    assert all(a is b for a, b in zip(snapshot.rulesets, validated.rulesets, strict=True))
    assert parsecache.rules_once(RULES) is validated
    assert rulescache.rules_cache_info()["misses"] == 1


def test_the_pods_profile_is_derived_once_per_parse_and_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshviz.engine.pipeline import pod as pod_module

    parsecache.cache_clear()
    derived: list[int | None] = []
    real = pod_module.derive_profile

    def counting(*args: object, **kwargs: object) -> object:
        derived.append(kwargs.get("proxy_uid"))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pod_module, "derive_profile", counting)
    first = pod_module.load_pod(iptables=RULES, pod_ip="10.0.0.10")
    again = pod_module.load_pod(iptables=RULES, pod_ip="10.0.0.10")
    assert again.profile is first.profile and derived == [None]
    other = pod_module.load_pod(iptables=RULES, pod_ip="10.0.0.10", proxy_uid=1234)
    assert other.profile is not None and other.profile.proxy_uid == 1234 and derived == [None, 1234]
