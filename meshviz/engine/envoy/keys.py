"""How a config dump spells a field: snake_case as in Envoy's protos, or camelCase as protobuf's JSON printer (and
`istioctl proxy-config -o json`) writes it.  Apart from the parser, so that reading a dump's index (`envoy.lazy`)
imports no model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_CAMEL_CACHE: dict[str, str] = {}


def _camel(name: str) -> str:
    c = _CAMEL_CACHE.get(name)
    if c is None:
        head, *rest = name.split("_")
        c = head + "".join(p[:1].upper() + p[1:] for p in rest)
        _CAMEL_CACHE[name] = c
    return c


def _get(d: Mapping[str, Any], name: str) -> Any:
    v = d.get(name)
    if v is None and "_" in name:
        v = d.get(_camel(name))
    return v
