"""original_src without mark 1337: the fix is an EnvoyFilter setting the mark, verified by re-simulation."""

from meshviz.engine.envoy.parser import parse_config_dump
from meshviz.engine.fix.plans import fix

from .helpers import CLIENT, PORT, envoy_with_mark, tproxy_evidence


def test_envoyfilter_sets_mark_1337_and_the_app_sees_the_client() -> None:
    r = fix(tproxy_evidence(envoy=envoy_with_mark(0)), client=CLIENT, port=PORT)
    assert r.before["app_reached"] is False
    assert r.works
    (rep,) = r.repairs
    assert rep.key == "envoyfilter-original-src"
    yaml = rep.artifacts[0].content
    assert "kind: EnvoyFilter" in yaml and "mark: 1337" in yaml and "operation: MERGE" in yaml
    assert 'app: "geo"' in yaml and "namespace: hr2" in yaml
    dump = r.to_dict()["patched"]["envoy_config_dump"]
    import json

    cfg = parse_config_dump(json.dumps(dump)).config
    vi = next(lst for lst in cfg.listeners if lst.name == "virtualInbound")
    assert [f.mark for f in vi.listener_filters if f.kind.endswith("original_src")] == [1337]


def test_missing_original_src_is_inserted_after_original_dst() -> None:
    r = fix(tproxy_evidence(envoy=envoy_with_mark(None)), client=CLIENT, port=PORT)
    assert r.works
    yaml = r.repairs[0].artifacts[0].content
    assert "operation: INSERT_AFTER" in yaml and "listenerFilter: envoy.filters.listener.original_dst" in yaml
