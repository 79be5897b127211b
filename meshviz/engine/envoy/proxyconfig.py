"""Several Envoy inputs merged into one config dump: `istioctl proxy-config listener|cluster|route -o json`
outputs (bare JSON arrays), `istioctl proxy-config all -o json` (a config dump, or several JSON documents one
after another), and the admin `/config_dump` itself.

    result = merge_envoy_inputs([("listeners.json", text1), ("clusters.json", text2)])
    result.errors      # ParseErrors naming the input, line and column; empty when merged
    result.text        # one `{"configs": [...]}` document the parser reads like an admin dump

A single input is returned unchanged (so the parser's line numbers still point into it).  The same listener,
cluster or route configuration given twice is kept once when identical; two different definitions under one
name are an error naming both inputs (meshviz does not guess which one the proxy has).  Two full config
dumps are refused: they are two proxies, or the same one twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from meshviz.engine.core.errors import ParseError
from meshviz.engine.envoy.parser import _classify

_ADMIN = "type.googleapis.com/envoy.admin.v3."
_SECTIONS = {
    "listener": ("ListenersConfigDump", "dynamic_listeners"),
    "cluster": ("ClustersConfigDump", "dynamic_active_clusters"),
    "route": ("RoutesConfigDump", "dynamic_route_configs"),
    "endpoints": ("EndpointsConfigDump", "dynamic_endpoint_configs"),
}


@dataclass(frozen=True)
class MergeResult:
    text: str
    errors: tuple[ParseError, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _documents(source: str, text: str) -> tuple[list[tuple[int, Any]], ParseError | None]:
    """The JSON documents of `text`, one after another (with the line each starts on)."""
    decoder = json.JSONDecoder()
    docs: list[tuple[int, Any]] = []
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            break
        line = text.count("\n", 0, pos) + 1
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            lines = text.splitlines()
            offending = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else ""
            return docs, ParseError(source, exc.lineno, exc.colno, offending, f"invalid JSON: {exc.msg}")
        docs.append((line, obj))
        pos = end
    if not docs:
        return docs, ParseError(source, 1, 1, "", "empty: expected Envoy config JSON")
    return docs, None


def _name(item: dict[str, Any]) -> str:
    name = item.get("name") or item.get("cluster_name") or item.get("clusterName")
    return str(name) if name is not None else ""


def merge_envoy_inputs(inputs: list[tuple[str, str]]) -> MergeResult:
    """Merge (source, text) Envoy inputs into one config dump text (see the module doc)."""
    if len(inputs) == 1:
        return MergeResult(inputs[0][1])
    errors: list[ParseError] = []
    dumps: list[tuple[str, list[Any]]] = []
    items: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {k: {} for k in _SECTIONS}
    notes: list[str] = []
    for source, text in inputs:
        docs, err = _documents(source, text)
        if err is not None:
            errors.append(err)
            continue
        for line, doc in docs:
            listed: list[Any]
            if isinstance(doc, dict) and isinstance(doc.get("configs"), list):
                dumps.append((source, doc["configs"]))
                continue
            if isinstance(doc, list):
                listed = doc
            elif isinstance(doc, dict) and any(
                isinstance(doc.get(k), list) for k in ("listeners", "clusters", "routes")
            ):
                listed = [x for k in ("listeners", "clusters", "routes") for x in doc.get(k) or []]
            else:
                listed = [doc]
            for i, item in enumerate(listed):
                kind = _classify(item) if isinstance(item, dict) else "unknown"
                if kind == "section":
                    dumps.append((source, [item]))
                    continue
                if kind not in _SECTIONS:
                    text_line = text.splitlines()[line - 1] if line <= len(text.splitlines()) else ""
                    errors.append(
                        ParseError(
                            source,
                            line,
                            1,
                            text_line,
                            f"document item [{i}] is not a Listener, Cluster or RouteConfiguration",
                        )
                    )
                    continue
                name = _name(item)
                if not name:  # unnamed (static listeners of some bootstraps): only an identical copy is the same
                    name = "\0" + json.dumps(item, sort_keys=True)
                seen = items[kind].get(name)
                if seen is None:
                    items[kind][name] = (source, item)
                elif seen[1] != item:
                    errors.append(
                        ParseError(
                            source, line, 1, name, f"{kind} {name!r} differs from the one in {seen[0]}: give one"
                        )
                    )
    full = [s for s, _ in dumps]
    if len({s for s in full}) > 1:
        errors.append(ParseError(full[1], 1, 1, "", f"a second full config dump (also {full[0]}): give one proxy's"))
    if errors:
        return MergeResult("", tuple(errors))
    configs: list[Any] = [c for _, cs in dumps for c in cs]
    for kind, (section, key) in _SECTIONS.items():
        if not items[kind]:
            continue
        entries: list[dict[str, Any]] = []
        for _, item in items[kind].values():
            if kind == "listener":
                entries.append({"name": _name(item), "active_state": {"listener": item}})
            elif kind == "cluster":
                entries.append({"cluster": item})
            elif kind == "route":
                entries.append({"route_config": item})
            else:
                entries.append({"endpoint_config": item})
        configs.append({"@type": _ADMIN + section, key: entries})
        notes.append(f"{len(entries)} {kind}{'s' if len(entries) != 1 else ''} merged from {len(inputs)} inputs")
    return MergeResult(json.dumps({"configs": configs}, indent=1) + "\n", (), tuple(notes))
