"""HTTP routing: virtual host by domain (exact, *.suffix, prefix.*, *), then the first matching route."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from meshviz.engine.envoy import EnvoyConfig, parse_config_dump, route_for
from meshviz.engine.envoy.model import HeaderMatcher, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


@cache
def load(name: str) -> EnvoyConfig:
    return parse_config_dump((FIXTURES / name).read_text(), name).config


def to(cluster: str, **match: object) -> Route:
    return Route(match=RouteMatch(**match), action=RouteAction("cluster", cluster=cluster), name=cluster)  # type: ignore[arg-type]


RC = RouteConfiguration(
    name="80",
    virtual_hosts=(
        VirtualHost("catchall", ("*",), (to("default", prefix="/"),)),
        VirtualHost("prefix", ("api.*",), (to("prefix-wild", prefix="/"),)),
        VirtualHost("suffix", ("*.example.com",), (to("suffix-short", prefix="/"),)),
        VirtualHost("suffix-long", ("*.api.example.com",), (to("suffix-long", prefix="/"),)),
        VirtualHost(
            "exact",
            ("www.example.com", "www.example.com:80"),
            (
                to("exact-path", path="/healthz"),
                to("regex", safe_regex="/v[0-9]+/items"),
                to("header", prefix="/", headers=(HeaderMatcher("x-canary", "exact", "yes"),)),
                to("prefix", prefix="/"),
            ),
        ),
    ),
)


def cluster_of(host: str, path: str = "/", headers: dict[str, str] | None = None) -> str | None:
    sel = route_for(RC, host, path, headers)
    return sel.route.action.cluster if sel.route is not None else None


def test_domain_ranking() -> None:
    assert cluster_of("www.example.com", "/x") == "prefix"
    assert cluster_of("WWW.Example.com", "/x") == "prefix"  # hosts are case-insensitive
    assert cluster_of("v1.api.example.com") == "suffix-long"
    assert cluster_of("shop.example.com") == "suffix-short"
    assert cluster_of("api.internal") == "prefix-wild"
    assert cluster_of("other.org") == "default"


def test_port_is_part_of_the_host_unless_ignored() -> None:
    assert cluster_of("www.example.com:80", "/x") == "prefix"
    assert cluster_of("shop.example.com:8080") == "default"  # "*.example.com" does not match "...:8080"
    ignoring = RouteConfiguration(name="x", virtual_hosts=RC.virtual_hosts[2:3], ignore_port_in_host_matching=True)
    sel = route_for(ignoring, "shop.example.com:8080", "/")
    assert sel.route is not None and sel.route.action.cluster == "suffix-short"
    assert sel.explanation[0].startswith("ignore_port_in_host_matching")


def test_first_matching_route_in_order() -> None:
    assert cluster_of("www.example.com", "/healthz") == "exact-path"
    assert cluster_of("www.example.com", "/healthz/x") == "prefix"
    assert cluster_of("www.example.com", "/v2/items?q=1") == "regex"
    assert cluster_of("www.example.com", "/v2/items/1") == "prefix"


def test_header_matchers() -> None:
    assert cluster_of("www.example.com", "/a", {"X-Canary": "yes"}) == "header"
    sel = route_for(RC, "www.example.com", "/a", {"x-canary": "no"})
    assert sel.route is not None and sel.route.action.cluster == "prefix"
    assert any("header x-canary does not match" in line for line in sel.explanation)


def test_no_virtual_host_or_no_route() -> None:
    only = RouteConfiguration(name="r", virtual_hosts=(VirtualHost("a", ("a.svc",), (to("a", path="/only"),)),))
    sel = route_for(only, "b.svc", "/")
    assert sel.virtual_host is None and "no virtual host" in sel.explanation[-1]
    sel = route_for(only, "a.svc", "/other")
    assert sel.virtual_host is not None and sel.route is None and "404" in sel.explanation[-1]


def test_istio_1_3_outbound_route_config() -> None:
    c = load("istio-1.3-sidecar-productpage-bookinfo.json")
    rc = c.route_config("9080")
    assert rc is not None
    sel = route_for(rc, "reviews:9080", "/reviews/0")
    assert sel.virtual_host is not None and "reviews" in sel.virtual_host.name
    assert sel.route is not None and sel.route.action.cluster == "outbound|9080||reviews.default.svc.cluster.local"
