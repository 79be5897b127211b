"""The parser takes the admin /config_dump, istioctl proxy-config lists, camelCase and v2-era field names."""

from __future__ import annotations

import json

from meshviz.engine.envoy import parse_config_dump

# What `istioctl proxy-config listeners <pod> -o json` prints: a bare array of Listener objects.
ISTIOCTL_LISTENERS = [
    {
        "name": "virtualInbound",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
        "filter_chains": [
            {
                "filter_chain_match": {"destination_port": 15006},
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": "BlackHoleCluster",
                            "cluster": "BlackHoleCluster",
                        },
                    }
                ],
                "name": "virtualInbound-blackhole",
            }
        ],
        "listener_filters": [
            {
                "name": "envoy.filters.listener.original_dst",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
                },
            }
        ],
        "traffic_direction": "INBOUND",
    },
    {
        "name": "10.96.0.1_443",
        "address": {"socket_address": {"address": "10.96.0.1", "port_value": 443}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "cluster": "outbound|443||kubernetes.default.svc.cluster.local",
                        },
                    }
                ]
            }
        ],
        "bind_to_port": False,
    },
]

# The same listener in proto3 JSON camelCase, as some tools print it.
CAMEL_LISTENER = {
    "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
    "name": "virtualOutbound",
    "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 15001}},
    "useOriginalDst": True,
    "filterChains": [
        {
            "filterChainMatch": {
                "destinationPort": 15001,
                "prefixRanges": [{"addressPrefix": "10.0.0.0", "prefixLen": 8}],
            },
            "filters": [
                {
                    "name": "envoy.filters.network.tcp_proxy",
                    "typedConfig": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "cluster": "BlackHoleCluster",
                    },
                }
            ],
        }
    ],
    "trafficDirection": "OUTBOUND",
}

CAMEL_CLUSTER = {
    "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "name": "inbound|8080||",
    "type": "ORIGINAL_DST",
    "lbPolicy": "CLUSTER_PROVIDED",
    "upstreamBindConfig": {"sourceAddress": {"address": "127.0.0.6", "portValue": 0}},
}


def test_istioctl_listener_array() -> None:
    result = parse_config_dump(json.dumps(ISTIOCTL_LISTENERS, indent=2), "listeners.json")
    c = result.config
    assert result.errors == ()
    assert c.sections == ("listeners",)
    assert [x.name for x in c.listeners] == ["virtualInbound", "10.96.0.1_443"]
    vi = c.listeners[0]
    assert vi.filter_chains[0].match.destination_port == 15006
    assert vi.filter_chains[0].filters[0].cluster == "BlackHoleCluster"
    assert not c.listeners[1].bind_to_port
    assert vi.source is not None and vi.source.line == 3 and '"virtualInbound"' in vi.source.text


def test_object_with_listeners_and_clusters_arrays() -> None:
    text = json.dumps({"listeners": [CAMEL_LISTENER], "clusters": [CAMEL_CLUSTER]})
    result = parse_config_dump(text)
    c = result.config
    assert result.errors == ()
    assert c.sections == ("listeners", "clusters")
    vo = c.listeners[0]
    assert vo.use_original_dst and vo.address is not None and vo.address.port == 15001
    assert vo.traffic_direction == "OUTBOUND"
    m = vo.filter_chains[0].match
    assert m.destination_port == 15001 and [str(n) for n in m.prefix_ranges] == ["10.0.0.0/8"]
    cl = c.clusters[0]
    assert cl.type == "ORIGINAL_DST" and cl.lb_policy == "CLUSTER_PROVIDED"
    assert cl.upstream_bind_config is not None and cl.upstream_bind_config.source_address is not None
    assert cl.upstream_bind_config.source_address.address == "127.0.0.6"


def test_camel_case_config_dump() -> None:
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "dynamicListeners": [{"name": "virtualOutbound", "activeState": {"listener": CAMEL_LISTENER}}],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "dynamicActiveClusters": [{"cluster": CAMEL_CLUSTER}],
            },
        ]
    }
    result = parse_config_dump(json.dumps(dump))
    assert result.errors == ()
    assert [x.name for x in result.config.listeners] == ["virtualOutbound"]
    assert [x.name for x in result.config.clusters] == ["inbound|8080||"]


def test_single_section_without_wrapper() -> None:
    section = {
        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "dynamic_active_clusters": [{"cluster": CAMEL_CLUSTER}],
    }
    result = parse_config_dump(json.dumps(section))
    assert result.errors == ()
    assert result.config.sections == ("ClustersConfigDump",)
    assert result.config.clusters[0].name == "inbound|8080||"


def test_v2_era_listener_fields() -> None:
    """Istio 1.2-1.4 dumps: `config` structs, `deprecated_v1.bind_to_port`, old filter names, v2 `hosts`."""
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v2alpha.ListenersConfigDump",
                "dynamic_active_listeners": [
                    {
                        "listener": {
                            "name": "10.0.0.5_9080",
                            "address": {"socket_address": {"address": "10.0.0.5", "port_value": 9080}},
                            "deprecated_v1": {"bind_to_port": False},
                            "listener_filters": [{"name": "envoy.listener.tls_inspector"}],
                            "filter_chains": [
                                {
                                    "tls_context": {"common_tls_context": {}},
                                    "filters": [{"name": "envoy.tcp_proxy", "config": {"cluster": "inbound|9080||x"}}],
                                }
                            ],
                        }
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump",
                "static_clusters": [
                    {
                        "cluster": {
                            "name": "zipkin",
                            "type": "STRICT_DNS",
                            "hosts": [{"socket_address": {"address": "zipkin.istio-system", "port_value": 9411}}],
                        }
                    }
                ],
            },
        ]
    }
    result = parse_config_dump(json.dumps(dump))
    assert result.errors == ()
    lst = result.config.listeners[0]
    assert not lst.bind_to_port
    assert lst.listener_filters[0].kind == "envoy.filters.listener.tls_inspector"
    chain = lst.filter_chains[0]
    assert chain.transport_socket == "tls"
    assert chain.filters[0].kind == "envoy.filters.network.tcp_proxy"
    assert chain.filters[0].cluster == "inbound|9080||x"
    zipkin = result.config.clusters[0]
    assert zipkin.state == "static" and zipkin.endpoints_source == "hosts"
    assert zipkin.endpoints[0].address.address == "zipkin.istio-system"


def test_typed_struct_filters_are_unwrapped() -> None:
    listener = {
        "name": "x",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 1}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "my-proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                            "type_url": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "value": {"cluster": "c1"},
                        },
                    }
                ]
            }
        ],
    }
    result = parse_config_dump(json.dumps([listener]))
    f = result.config.listeners[0].filter_chains[0].filters[0]
    assert f.kind == "envoy.filters.network.tcp_proxy" and f.cluster == "c1"
    assert f.type_url == "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def test_route_configuration_list() -> None:
    routes = [{"name": "8080", "virtual_hosts": [{"name": "a", "domains": ["a.ns.svc.cluster.local"], "routes": []}]}]
    result = parse_config_dump(json.dumps(routes))
    assert result.errors == ()
    assert result.config.sections == ("routes",)
    rc = result.config.route_config("8080")
    assert rc is not None and rc.virtual_hosts[0].domains == ("a.ns.svc.cluster.local",)
