"""Request examples for every endpoint of the OpenAPI schema (and so of Swagger UI): a drf-spectacular
postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).

Each operation gets a curl command in its description and as `x-codeSamples` (what Redoc and other tools show).
An operation that merely inherited its view's docstring (create, read and list of one view shared it) gets a
description of its own, from its summary.
"""

from __future__ import annotations

import json
import re
from typing import Any

BASE = "https://meshviz.example.com"
AUTH = '-H "Authorization: Bearer $MESHVIZ_KEY"'

#: a JSON body per (path, method) where the generic one would say too little
BODIES: dict[tuple[str, str], Any] = {
    ("/api/v1/analyses/", "post"): {
        "pod_ip": "172.16.188.31",
        "iptables": "*nat\n:PREROUTING ACCEPT [0:0]\n...\nCOMMIT\n",
        "envoy_config_dump": "{...}",
        "app_ports": [8080],
    },
    ("/api/v1/analyses/{slug}/connections/", "post"): {
        "direction": "inbound",
        "client": "10.255.0.1:40000",
        "port": 8080,
    },
    ("/api/v1/analyses/{slug}/sharing/", "post"): {"public": True, "teams": ["sre"]},
}

_PLACEHOLDERS = {"slug": "SLUG", "id": "1", "pk": "1", "namespace": "apps", "pod": "web-0", "fmt": "svg"}


def _url(path: str, op: dict[str, Any]) -> str:
    url = re.sub(r"\{(\w+)\}", lambda m: _PLACEHOLDERS.get(m.group(1), m.group(1).upper()), path)
    query = [p for p in op.get("parameters") or [] if p.get("in") == "query" and p.get("required")]
    if query:
        url += "?" + "&".join(f"{p['name']}=..." for p in query)
    return BASE + url


def _example_body(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    ref = schema.get("$ref")
    if ref:
        schema = components.get(ref.rsplit("/", 1)[-1], {})
    props = schema.get("properties") or {}
    required = schema.get("required") or list(props)[:3]
    body: dict[str, Any] = {}
    for name in required:
        p = props.get(name) or {}
        t = p.get("type")
        body[name] = (
            p.get("example")
            or p.get("default")
            or {"integer": 1, "boolean": True, "array": [], "object": {}}.get(str(t), "...")
        )
    return body


def curl_for(path: str, method: str, op: dict[str, Any], components: dict[str, Any]) -> str:
    parts = ["curl -s"]
    if method != "get":
        parts.append(f"-X {method.upper()}")
    parts.append(AUTH)
    content = ((op.get("requestBody") or {}).get("content")) or {}
    if method in ("post", "put", "patch") and content:
        if "application/json" in content:
            body = BODIES.get((path, method)) or _example_body(
                content["application/json"].get("schema") or {}, components
            )
            parts.append("-H 'Content-Type: application/json'")
            parts.append("-d '" + json.dumps(body).replace("'", "'\\''") + "'")
        elif "multipart/form-data" in content:
            parts.append("-F file=@evidence.tar.gz")
        else:
            kind = next(iter(content))
            parts.append(f"-H 'Content-Type: {kind}' --data-binary @file")
    if path.endswith(".{fmt}") or "diagram" in path or path.endswith("card.png"):
        parts.append("-o diagram.svg")
    parts.append(f"'{_url(path, op)}'")
    return " \\\n  ".join(parts)


def add_curl_examples(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    components = (result.get("components") or {}).get("schemas") or {}
    for path, methods in (result.get("paths") or {}).items():
        docstrings: dict[str, int] = {}
        for op in methods.values():
            if isinstance(op, dict) and op.get("description"):
                docstrings[op["description"]] = docstrings.get(op["description"], 0) + 1
        for method, op in methods.items():
            if not isinstance(op, dict) or method not in ("get", "post", "put", "patch", "delete"):
                continue
            description = str(op.get("description") or "")
            if description and docstrings.get(description, 0) > 1 and op.get("summary"):
                # a description of its own, not the view's docstring that create and read would share
                description = str(op["summary"]).rstrip(".") + "."
            if not description:
                description = str(op.get("summary") or "")
            command = curl_for(path, method, op, components)
            if "```sh" not in description:
                description += f"\n\n**Example**\n\n```sh\n{command}\n```"
            op["description"] = description.strip()
            op["x-codeSamples"] = [{"lang": "Shell", "label": "curl", "source": command}]
    return result
