"""What `istioctl proxy-config listener|cluster|route -o json` print for a recorded config dump: the lists of
resources (static and dynamic), as the merge tests feed them back in."""

from __future__ import annotations

import json
from typing import Any


def proxy_config(dump: str) -> dict[str, list[dict[str, Any]]]:
    """What `istioctl proxy-config listener|cluster|route -o json` print for this dump (lists of resources)."""
    out: dict[str, list[dict[str, Any]]] = {"listener": [], "cluster": [], "route": []}
    for section in json.loads(dump)["configs"]:
        kind = section["@type"].rsplit(".", 1)[-1]
        if kind == "ListenersConfigDump":
            out["listener"] += [x["listener"] for x in section.get("static_listeners", [])]
            out["listener"] += [
                x["active_state"]["listener"] for x in section.get("dynamic_listeners", []) if "active_state" in x
            ]
        elif kind == "ClustersConfigDump":
            out["cluster"] += [x["cluster"] for x in section.get("static_clusters", [])]
            out["cluster"] += [x["cluster"] for x in section.get("dynamic_active_clusters", [])]
        elif kind == "RoutesConfigDump":
            out["route"] += [x["route_config"] for x in section.get("static_route_configs", [])]
            out["route"] += [x["route_config"] for x in section.get("dynamic_route_configs", [])]
    return out
