"""What is present but not modelled is reported as (aggregated) warnings, never silently dropped."""

from __future__ import annotations

import json

from meshviz.engine.envoy import parse_config_dump

LISTENER = {
    "name": "l",
    "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
    "access_log": [{"name": "envoy.access_loggers.file"}],
    "per_connection_buffer_limit_bytes": 1,
    "filter_chains": [
        {
            "filter_chain_match": {"address_suffix": "x", "prefix_ranges": [{"address_prefix": "10.0.0.0"}]},
            "filters": [
                {
                    "name": "envoy.filters.network.rbac",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"},
                },
                {"name": "envoy.filters.network.tcp_proxy", "typed_config": {"cluster": "c", "idle_timeout": "1s"}},
            ],
        }
    ],
}


def messages(text: str) -> list[str]:
    return [w.message for w in parse_config_dump(text).warnings]


def test_unmodelled_fields_are_listed_with_counts() -> None:
    msgs = messages(json.dumps([LISTENER, LISTENER]))
    assert "listener fields present but not modelled: access_log (2), per_connection_buffer_limit_bytes (2)" in msgs
    assert "filter_chain_match fields present but not modelled: address_suffix (2)" in msgs
    assert "tcp_proxy fields present but not modelled: idle_timeout (2)" in msgs
    assert (
        "filters kept by name only, their configuration is not evaluated: network filter envoy.filters.network.rbac (2)"
        in msgs
    )


def test_missing_prefix_len_is_zero_like_envoy() -> None:
    result = parse_config_dump(json.dumps([LISTENER]))
    chain = result.config.listeners[0].filter_chains[0]
    assert [str(n) for n in chain.match.prefix_ranges] == ["0.0.0.0/0"]
    assert any("prefix_len unset" in w.message for w in result.warnings)


def test_unknown_config_dump_sections_and_scoped_routes() -> None:
    dump = {
        "configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.EcdsConfigDump", "ecds_filters": []},
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump",
                "dynamic_scoped_route_configs": [{}],
            },
        ]
    }
    msgs = messages(json.dumps(dump))
    assert "configs[0]: config dump section EcdsConfigDump is not modelled" in msgs
    assert any("1 scoped route configuration(s) not modelled" in m for m in msgs)


def test_redaction_is_reported() -> None:
    msgs = messages(json.dumps([{"name": "c", "type": "STATIC", "metadata": {"password": "x1"}}]))
    assert "1 secret value(s) redacted (replaced by the marker) before parsing" in msgs
