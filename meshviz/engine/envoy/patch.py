"""Patch an Envoy config dump the way Istio (or an EnvoyFilter) would.

The patches work on the JSON itself, so the patched dump is both what the
engine re-simulates and what a user can read; the parser then turns it back
into the model.  Key style (snake_case or camelCase) follows the dump.
Listeners in an error state are left alone (they are not serving).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from meshviz.engine.core.defaults import DEFAULT_TPROXY_MARK
from meshviz.engine.core.gcpause import gc_paused
from meshviz.engine.envoy.model import ORIGINAL_DST, ORIGINAL_SRC

ORIGINAL_SRC_TYPE = "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc"
_SKIP = {"error_state", "errorState", "draining_state", "drainingState"}


@dataclass
class PatchResult:
    text: str
    changes: list[str] = field(default_factory=list)


def _key(d: dict[str, Any], snake: str) -> str:
    """The key as this dump spells it (snake_case or camelCase)."""
    parts = snake.split("_")
    camel = parts[0] + "".join(p.title() for p in parts[1:])
    if camel in d and snake not in d:
        return camel
    camel_style = any(any(c.isupper() for c in k) for k in d if not k.startswith("@"))
    return camel if camel_style and snake not in d else snake


_LISTENER_KEYS = (
    "filter_chains",
    "filterChains",
    "listener_filters",
    "listenerFilters",
    "use_original_dst",
    "useOriginalDst",
)


def _is_listener(d: dict[str, Any]) -> bool:
    return "name" in d and "address" in d and any(k in d for k in _LISTENER_KEYS)


def _walk(obj: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The listener objects (not inside a listener or an error or draining state) and every `node.metadata` object
    of a dump, each in document order (depth first): one walk with a stack of its own, since a big mesh's dump
    holds ~10^6 values."""
    listeners: list[dict[str, Any]] = []
    metadata: list[dict[str, Any]] = []
    stack: list[tuple[Any, bool]] = [(obj, True)]  # (value, whether listeners are searched for in it)
    while stack:
        node, search = stack.pop()
        if isinstance(node, dict):
            n = node.get("node")
            if isinstance(n, dict) and isinstance(n.get("metadata"), dict):
                metadata.append(n["metadata"])
            if search and _is_listener(node):
                listeners.append(node)
                search = False
            stack.extend(
                reversed([(v, search and k not in _SKIP) for k, v in node.items() if isinstance(v, (dict, list))])
            )
        elif isinstance(node, list):
            stack.extend(reversed([(v, search) for v in node if isinstance(v, (dict, list))]))
    return listeners, metadata


def iter_listeners(obj: Any) -> Iterator[dict[str, Any]]:
    """The listener objects in a dump, in document order (not inside a listener or an error or draining state)."""
    return iter(_walk(obj)[0])


def iter_node_metadata(obj: Any) -> Iterator[dict[str, Any]]:
    """Every `node.metadata` object in a dump, in document order."""
    return iter(_walk(obj)[1])


def _filter_name(f: dict[str, Any]) -> str:
    return str(f.get("name", ""))


def _port(listener: dict[str, Any]) -> int | None:
    addr = listener.get("address") or {}
    sa = addr.get("socket_address") or addr.get("socketAddress") or {}
    p = sa.get("port_value", sa.get("portValue"))
    return int(p) if p is not None else None


def _binds(listener: dict[str, Any]) -> bool:
    v = listener.get("bind_to_port", listener.get("bindToPort", True))
    if isinstance(v, dict):  # BoolValue wrapper
        v = v.get("value", True)
    return bool(v)


def set_interception_mode(
    dump: Any, mode: str, changes: list[str], metadata: Iterable[dict[str, Any]] | None = None
) -> None:
    """INTERCEPTION_MODE in the node's metadata (`metadata`: the dump's node metadata objects, when known)."""
    for md in iter_node_metadata(dump) if metadata is None else metadata:
        if md.get("INTERCEPTION_MODE") != mode:
            changes.append(f"node metadata INTERCEPTION_MODE: {md.get('INTERCEPTION_MODE')} -> {mode}")
            md["INTERCEPTION_MODE"] = mode


def set_transparent(dump: Any, on: bool, changes: list[str], listeners: Iterable[dict[str, Any]] | None = None) -> None:
    """Istio sets `transparent: true` on the listeners that accept captured traffic in TPROXY mode (`listeners`: the
    dump's listeners, when known)."""
    for lst in iter_listeners(dump) if listeners is None else listeners:
        if not _binds(lst):
            continue
        k = _key(lst, "transparent")
        if on and lst.get(k) is not True:
            lst[k] = True
            changes.append(f"listener {lst.get('name')}: transparent: true")
        elif not on and k in lst:
            del lst[k]
            changes.append(f"listener {lst.get('name')}: transparent removed")


def set_original_src(
    dump: Any,
    listener_names: tuple[str, ...],
    mark: int | None,
    changes: list[str],
    listeners: Iterable[dict[str, Any]] | None = None,
) -> None:
    """Add (or, with mark None, remove) `envoy.filters.listener.original_src` on the named listeners (`listeners`:
    the dump's listeners, when known).

    Istio puts it right after `original_dst` in the inbound listener (TPROXY mode) with mark 1337.
    """
    for lst in iter_listeners(dump) if listeners is None else listeners:
        name = str(lst.get("name"))
        if name not in listener_names and not (
            name.startswith("virtualInbound") and "virtualInbound" in listener_names
        ):
            continue
        k = _key(lst, "listener_filters")
        filters: list[dict[str, Any]] = lst.setdefault(k, [])
        existing = [f for f in filters if _filter_name(f) in (ORIGINAL_SRC, "envoy.listener.original_src")]
        if mark is None:
            for f in existing:
                filters.remove(f)
                changes.append(f"listener {name}: original_src listener filter removed")
            continue
        if existing:
            for f in existing:
                tk = _key(f, "typed_config")
                cfg = f.setdefault(tk, {"@type": ORIGINAL_SRC_TYPE})
                if cfg.get("mark") != mark:
                    cfg["mark"] = mark
                    changes.append(f"listener {name}: original_src mark set to {mark}")
            continue
        new = {"name": ORIGINAL_SRC, _key(lst, "typed_config"): {"@type": ORIGINAL_SRC_TYPE, "mark": mark}}
        pos = next(
            (i + 1 for i, f in enumerate(filters) if _filter_name(f) in (ORIGINAL_DST, "envoy.listener.original_dst")),
            0,
        )
        filters.insert(pos, new)
        changes.append(f"listener {name}: original_src listener filter added (mark {mark})")


def patch_dump(
    text: str,
    *,
    mode: str | None = None,
    transparent: bool | None = None,
    original_src: tuple[tuple[str, ...], int | None] | None = None,
) -> PatchResult:
    """Apply the requested changes; returns the new JSON text and what changed."""
    with gc_paused():  # a big mesh's dump is ~10^6 objects without cycles: no collections over them
        return _patch_dump(text, mode, transparent, original_src)


def _patch_dump(
    text: str, mode: str | None, transparent: bool | None, original_src: tuple[tuple[str, ...], int | None] | None
) -> PatchResult:
    dump = json.loads(text)
    changes: list[str] = []
    listeners, metadata = _walk(dump)  # once: the changes below add no listener and no node
    if mode is not None:
        set_interception_mode(dump, mode, changes, metadata)
    if transparent is not None:
        set_transparent(dump, transparent, changes, listeners)
    if original_src is not None:
        set_original_src(dump, original_src[0], original_src[1], changes, listeners)
    # json's C encoder (indent=2 would run its pure-Python one: most of an upload's CPU went to re-indenting the
    # dump for the comparison and the fix); the text is parsed again by the engine, never shown as is
    return PatchResult(json.dumps(dump), changes)


def to_mode(text: str, mode: str, mark: int = DEFAULT_TPROXY_MARK) -> PatchResult:
    """The same sidecar as Istio configures it in the other interception mode.

    TPROXY: `transparent: true` on the capturing listeners and `original_src` (mark 1337) on virtualInbound.
    REDIRECT: neither.  The inbound clusters' 127.0.0.6 upstream_bind_config is kept: Istio sets it in both modes
    and original_src takes precedence over it.
    """
    patched, changes = _to_mode(text, mode, mark)
    return PatchResult(patched, list(changes))


@lru_cache(maxsize=8)
def _to_mode(text: str, mode: str, mark: int) -> tuple[str, tuple[str, ...]]:
    """`to_mode`'s work, once per dump: the comparison and the fix both switch the same dump to the other mode."""
    if mode == "TPROXY":
        r = patch_dump(text, mode="TPROXY", transparent=True, original_src=(("virtualInbound",), mark))
    else:
        r = patch_dump(text, mode="REDIRECT", transparent=False, original_src=(("virtualInbound",), None))
    return r.text, tuple(r.changes)


def inbound_listener_ports(text: str) -> list[int]:
    out = []
    for lst in iter_listeners(json.loads(text)):
        p = _port(lst)
        if p is not None and _binds(lst):
            out.append(p)
    return out


def iter_clusters(obj: Any) -> Iterator[dict[str, Any]]:
    """Cluster objects of a dump (`dynamic_active_clusters[].cluster`, `static_clusters[].cluster`, or an
    `istioctl proxy-config cluster -o json` list)."""
    if isinstance(obj, dict):
        clusterish = "type" in obj or "load_assignment" in obj or "loadAssignment" in obj
        listenerish = "filter_chains" in obj or "filterChains" in obj
        if isinstance(obj.get("name"), str) and clusterish and not listenerish:
            yield obj
            return
        for k, v in obj.items():
            if k in _SKIP:
                continue
            yield from iter_clusters(v)
    elif isinstance(obj, list):
        for item in obj:
            yield from iter_clusters(item)


def _loopback_endpoint(cluster: dict[str, Any]) -> bool:
    la = cluster.get("load_assignment") or cluster.get("loadAssignment") or {}
    for group in la.get("endpoints") or []:
        for ep in group.get("lb_endpoints") or group.get("lbEndpoints") or []:
            sa = (((ep.get("endpoint") or {}).get("address") or {}).get("socket_address")) or (
                ((ep.get("endpoint") or {}).get("address") or {}).get("socketAddress")
            )
            if isinstance(sa, dict) and str(sa.get("address", "")) in ("127.0.0.1", "::1"):
                return True
    return False


def upgrade_inbound_clusters(text: str, bind: str | None = "127.0.0.6") -> PatchResult:
    """Istio >= 1.10's inbound clusters: the pre-1.10 `inbound|PORT||` clusters that dial the application on
    127.0.0.1 become ORIGINAL_DST clusters (Envoy dials the pod IP, the connection's original destination),
    bound to `bind` (127.0.0.6) as 1.10 does in REDIRECT mode (TPROXY's original_src overrides the bind)."""
    dump = json.loads(text)
    changes: list[str] = []
    for c in iter_clusters(dump):
        name = str(c.get("name"))
        if not name.startswith("inbound|") or not _loopback_endpoint(c):
            continue
        for k in ("load_assignment", "loadAssignment", "hosts"):
            c.pop(k, None)
        c["type"] = "ORIGINAL_DST"
        c["lb_policy"] = "CLUSTER_PROVIDED"
        if bind is not None:
            c["upstream_bind_config"] = {"source_address": {"address": bind, "port_value": 0}}
        changes.append(f"cluster {name}: dials the original destination (the pod IP) instead of 127.0.0.1")
    return PatchResult(json.dumps(dump, indent=2), changes)
