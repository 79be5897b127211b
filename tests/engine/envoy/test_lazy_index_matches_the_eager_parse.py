"""The lazy index of a config dump (`envoy.lazy`) against the eager parse and redaction it stands in for.

Over every dump in the fixtures (the corpus, the scenarios' dumps and the planted-secrets dump of test_redaction):
the index lists the listeners and clusters the eager parse builds, with the node, sections and counts, its
materialised model is the eager one, and its redacted text and count are the eager redaction's.  A secret planted in
each place the redactor knows is removed from what the index holds and from its redacted text.  Invalid JSON is
still an error with line and column at once; problems inside a listener wait until it is materialised.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from meshviz.engine.envoy import MARKER, parse_config_dump, redact_config_dump_text
from meshviz.engine.envoy.lazy import DumpIndex, index_config_dump
from meshviz.engine.envoy.redact import redact
from tests.engine.envoy.test_redaction import SECRETS, assert_clean, planted_dump

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
DUMPS = sorted([*ROOT.glob("envoy/*.json"), *ROOT.glob("scenarios/*/envoy.json")])
NAMES = [str(p.relative_to(ROOT)) for p in DUMPS]


def texts() -> list[tuple[str, str]]:
    out = [(name, (ROOT / name).read_text()) for name in NAMES]
    out.append(("planted (indent 2)", json.dumps(planted_dump(), indent=2)))
    out.append(("planted (compact)", json.dumps(planted_dump())))
    return out


TEXTS = texts()
IDS = [name for name, _ in TEXTS]


def listeners_of(index: DumpIndex) -> list[tuple[str, str, str, str | None]]:
    return [(x.name, x.state, x.origin, x.error_detail) for x in index.listeners]


def assert_same_as_eager(index: DumpIndex, text: str, source: str) -> None:
    eager = parse_config_dump(text, source).config
    assert listeners_of(index) == [(x.name, x.state, x.origin, x.error_detail) for x in eager.listeners]
    assert [(c.name, c.state) for c in index.clusters] == [(c.name, c.state) for c in eager.clusters]
    assert (index.node_id, index.node_cluster, index.node_metadata) == (
        eager.node_id,
        eager.node_cluster,
        eager.node_metadata,
    )
    assert index.interception_mode == eager.interception_mode
    assert index.sections == eager.sections
    assert (index.route_configs, index.endpoint_configs) == (len(eager.route_configs), len(eager.endpoint_configs))


@pytest.mark.parametrize(("name", "text"), TEXTS, ids=IDS)
def test_index_lists_what_the_eager_parse_builds_without_parsing_it(name: str, text: str) -> None:
    index = index_config_dump(text.encode(), name)
    assert not index.complete  # the lazy reading vouched for it: the eager parse did not run
    assert index.errors == ()
    assert_same_as_eager(index, text, name)


@pytest.mark.parametrize(("name", "text"), TEXTS, ids=IDS)
def test_index_materialises_the_eager_model(name: str, text: str) -> None:
    index = index_config_dump(text, name)
    assert index.materialise() == parse_config_dump(text, name)


@pytest.mark.parametrize(("name", "text"), TEXTS, ids=IDS)
def test_index_redacts_exactly_what_the_eager_redaction_redacts(name: str, text: str) -> None:
    red = redact(text)
    eager = (red.text, red.count)
    assert index_config_dump(text, name).redacted() == eager
    assert redact_config_dump_text(text) == eager
    assert index_config_dump(text.encode(), name).redacted() == eager


def camel_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            (k.split("_")[0] + "".join(w[:1].upper() + w[1:] for w in k.split("_")[1:]) if k != "@type" else k): (
                camel_keys(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [camel_keys(v) for v in node]
    return node


@pytest.mark.parametrize(
    "name", ["envoy/istio-1.18-sidecar-geo-virtualInbound-error-state.json", "envoy/istio-1.4-sidecar-productpage.json"]
)
def test_camel_case_dumps_are_indexed_like_the_eager_parse_reads_them(name: str) -> None:
    text = json.dumps(camel_keys(json.loads((ROOT / name).read_text())), indent=1)
    assert '"dynamicListeners"' in text
    index = index_config_dump(text.encode(), name)
    assert not index.complete
    assert_same_as_eager(index, text, name)
    assert index.listeners and index.clusters


def test_bare_lists_are_indexed_by_the_eager_parse() -> None:
    dump = json.loads((ROOT / "envoy/istio-1.4-sidecar-productpage.json").read_text())
    listeners = [
        entry["active_state"]["listener"]
        for cfg in dump["configs"]
        for entry in cfg.get("dynamic_listeners", [])
        if "active_state" in entry
    ]
    text = json.dumps(listeners)
    index = index_config_dump(text, "listeners.json")
    assert index.complete
    assert_same_as_eager(index, text, "listeners.json")


# --------------------------------------------------------------------------
# A secret in each place the redactor looks, inside the entries the index keeps raw
# --------------------------------------------------------------------------

PEM = SECRETS["key"]

#: (place, a listener or cluster fragment holding the secret "planted-<place>")
PLACES: list[tuple[str, dict[str, Any]]] = [
    ("snake-case key", {"password": "planted-snake"}),
    ("camelCase key", {"clientSecret": "planted-camel"}),
    ("upper-case key", {"API_KEY": "planted-upper"}),
    ("hyphenated key", {"x-api-key": "planted-hyphen"}),
    ("key suffix", {"refresh_token": "planted-suffix"}),
    ("key prefix", {"bearer_header": "planted-prefix"}),
    ("private key object", {"private_key": {"inline_string": "planted-private"}}),
    ("camelCase private key", {"privateKey": {"inlineBytes": "planted-camel-private"}}),
    (
        "tls inline data",
        {"common_tls_context": {"validation_context": {"trusted_ca": {"inline_string": "planted-ca"}}}},
    ),
    ("header by key", {"headers": [{"key": "Authorization", "value": "planted-header-key"}]}),
    ("header by name", {"headers": [{"name": "cookie", "exact_match": "planted-header-name"}]}),
    ("PEM private key value", {"comment": PEM.replace("planted", "planted-pem")}),
    ("base64 PEM value", {"blob": SECRETS["b64"]}),
    ("JWT value", {"operation": SECRETS["jwt"]}),
    ("bearer value", {"note": "Bearer planted-bearer-0123456789"}),
    ("escaped key", {"pass\\u0077ord": "planted-escaped-key"}),
    ("escaped value", {"operation": "Bearer\\u0020planted-escaped-bearer"}),
    (
        "secret under a file-named private key",
        {"private_key": {"filename": "/etc/k.pem", "inline_string": "planted-f"}},
    ),
    (
        "private key beside a file-named one",
        {"private_key": {"filename": "/etc/k.pem"}, "old_private_key": "planted-2"},
    ),
    ("key lower-cased from a non-ASCII letter", {"to\u212aen": "planted-kelvin"}),
    ("private key under fileName (not kept)", {"private_key": {"fileName": "planted-file-camel"}}),
    ("private key under file_name (not kept)", {"privateKey": {"file_name": "planted-file-snake"}}),
]

PLANTED = [
    "planted-snake",
    "planted-camel",
    "planted-upper",
    "planted-hyphen",
    "planted-suffix",
    "planted-prefix",
    "planted-private",
    "planted-camel-private",
    "planted-ca",
    "planted-header-key",
    "planted-header-name",
    "planted-pemKEYmaterial",
    SECRETS["b64"],
    SECRETS["jwt"],
    "planted-bearer",
    "planted-escaped-key",
    "planted-escaped-bearer",
    "planted-f",
    "planted-2",
    "planted-kelvin",
    "planted-file-camel",
    "planted-file-snake",
]


def dump_with(fragment: dict[str, Any], where: str) -> str:
    """The istio-1.4 dump with `fragment` merged into its first active listener or cluster, or a route config."""
    dump = json.loads((ROOT / "envoy/istio-1.4-sidecar-productpage.json").read_text())
    for cfg in dump["configs"]:
        kind = cfg["@type"].rsplit(".", 1)[-1]
        if where == "listener" and kind == "ListenersConfigDump":
            cfg["dynamic_listeners"][0]["active_state"]["listener"]["metadata"] = copy.deepcopy(fragment)
        elif where == "cluster" and kind == "ClustersConfigDump":
            cfg["dynamic_active_clusters"][0]["cluster"]["metadata"] = copy.deepcopy(fragment)
        elif where == "route" and kind == "RoutesConfigDump":
            cfg["dynamic_route_configs"][0]["route_config"]["metadata"] = copy.deepcopy(fragment)
    # the escaped places are written as JSON escapes: json.dumps would escape the backslash itself
    return json.dumps(dump, indent=1, ensure_ascii=False).replace("\\\\u", "\\u")


@pytest.mark.parametrize("where", ["listener", "cluster", "route"])
@pytest.mark.parametrize(
    ("place", "fragment", "secret"), [(p, f, s) for (p, f), s in zip(PLACES, PLANTED, strict=True)]
)
def test_a_secret_planted_in_each_place_is_redacted_by_the_index(
    where: str, place: str, fragment: dict[str, Any], secret: str
) -> None:
    text = dump_with(fragment, where)
    assert secret in text or json.dumps(secret)[1:-1] in text
    index = index_config_dump(text.encode(), "planted.json")
    assert not index.complete and index.secret_values >= 1, place
    redacted, count = index.redacted()
    red = redact(text)
    assert (redacted, count) == (red.text, red.count) == redact_config_dump_text(text)
    assert secret not in redacted and MARKER in redacted
    assert count >= 1


def test_a_failed_listeners_details_are_redacted_in_the_index() -> None:
    dump = json.loads((ROOT / "envoy/istio-1.18-sidecar-geo-virtualInbound-error-state.json").read_text())
    for cfg in dump["configs"]:
        for entry in cfg.get("dynamic_listeners", []):
            if "error_state" in entry:
                entry["error_state"]["details"] = "rejected: Authorization: Bearer planted-in-details-0123"
    index = index_config_dump(json.dumps(dump).encode(), "geo.json")
    failed = [x for x in index.listeners if x.state == "error"]
    assert failed and all(x.error_detail == MARKER for x in failed)
    assert "planted-in-details" not in repr(index)


def test_the_planted_dump_holds_no_secret_in_the_index() -> None:
    index = index_config_dump(json.dumps(planted_dump()), "planted.json")
    assert index.secret_values == 14
    assert_clean(repr(index))
    assert_clean(index.redacted()[0])


# --------------------------------------------------------------------------
# Errors: syntax at once, the inside of a listener when it is built
# --------------------------------------------------------------------------


def test_invalid_json_is_an_error_with_line_and_column_at_once() -> None:
    text = (ROOT / "envoy/istio-1.4-sidecar-productpage.json").read_text()
    lines = text.splitlines(keepends=True)
    lines[1281] = lines[1281].replace('"address": {', '"address": {,')  # line 1282, inside a listener
    cut = "".join(lines)
    index = index_config_dump(cut.encode(), "cut.json")
    eager = parse_config_dump(cut, "cut.json")
    assert index.complete and index.errors == eager.errors
    (err,) = index.errors
    assert (err.line, err.column) == (1282, 19) and "not valid JSON" in err.message


def test_a_listener_without_an_object_is_an_error_at_once() -> None:
    dump = json.loads((ROOT / "envoy/istio-1.4-sidecar-productpage.json").read_text())
    for cfg in dump["configs"]:
        if "dynamic_listeners" in cfg:
            cfg["dynamic_listeners"][0]["active_state"]["listener"] = ["not", "an", "object"]
    text = json.dumps(dump, indent=1)
    index = index_config_dump(text, "bad.json")
    assert index.complete and index.errors and index.errors == parse_config_dump(text, "bad.json").errors


def test_a_bad_address_inside_a_listener_is_found_when_it_is_materialised() -> None:
    dump = json.loads((ROOT / "envoy/istio-1.4-sidecar-productpage.json").read_text())
    for cfg in dump["configs"]:
        if "dynamic_listeners" in cfg:
            listener = cfg["dynamic_listeners"][0]["active_state"]["listener"]
            listener["address"]["socket_address"]["port_value"] = "not-a-port"
    text = json.dumps(dump, indent=1)
    index = index_config_dump(text, "bad.json")
    assert not index.complete and index.errors == ()  # the index does not read inside listeners
    errors = index.materialise().errors
    assert errors and "port_value" in errors[0].message and errors[0].line > 1
