"""What-if edits of the other evidence: ip rule / ip route lines, sysctls and Envoy's listeners and clusters, each
checked by its parser before it is applied.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from meshviz.engine.core.errors import ParseError
from meshviz.engine.core.model import Family
from meshviz.engine.envoy.patch import _key, iter_listeners, set_original_src
from meshviz.engine.explorer.edits import FILE_NAMES, TEXT_KINDS, Edit, _EditFailed
from meshviz.engine.explorer.rule_surgery import _err
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.pipeline.evidence import Evidence
from meshviz.engine.routing.defaults import default_policy_rules
from meshviz.engine.routing.flow import render_rule as render_rule_text
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.sysctl import parse_sysctls

# --------------------------------------------------------------------------
# Other evidence
# --------------------------------------------------------------------------


def _check_text(kind: str, text: str, n: int, ev: Evidence) -> list[ParseError]:
    """Parse a whole evidence text; its errors, re-sourced as `edit N (file)`."""
    source = f"edit {n} ({FILE_NAMES[kind]})"
    errors: tuple[ParseError, ...]
    if kind == "iptables":
        errors = parse_iptables(text, source=source).errors
    elif kind == "ip_rule":
        errors = parse_ip_rules(text, source=source).errors
    elif kind == "ip_route":
        errors = parse_ip_routes(text, source=source).errors
    elif kind == "sysctl":
        errors = parse_sysctls(text, source=source).errors
    elif kind == "nftables":
        from meshviz.engine.nftables.parser import parse_nftables

        errors = parse_nftables(text, source=source).errors
    else:
        from meshviz.engine.envoy.parser import parse_config_dump

        errors = parse_config_dump(text, source=source).errors
    return list(errors)


def _text_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    kind = edit.kind
    if kind not in TEXT_KINDS:
        raise _err(n, f"unknown kind {kind!r} (one of {', '.join(TEXT_KINDS)})", str(kind))
    assert kind is not None
    if edit.text is None:
        raise _err(n, f"{edit.op} needs a text")
    old = getattr(ev, kind) or ""
    assumed = ""
    if edit.op == "append_text" and not old.strip() and kind == "ip_rule":
        # never uploaded: the engine assumed the kernel's default rules; appending adds to them (a listing of one
        # rule alone would replace them and leave nothing sending traffic to the local and main tables)
        old = assumed = "".join(render_rule_text(r) + "\n" for r in default_policy_rules(Family.IPV4))
    if edit.op == "set_text":
        new = edit.text
    else:
        addition = edit.text if edit.text.endswith("\n") else edit.text + "\n"
        new = (old if not old or old.endswith("\n") else old + "\n") + addition
    if kind == "iptables" and not new.strip():
        raise _err(n, "the iptables evidence cannot be empty")
    errors = _check_text(kind, new, n, ev) if new.strip() else []
    if errors:
        raise _EditFailed(errors)
    value: str | None = new if (new.strip() or kind == "iptables") else None
    what = "replaced" if edit.op == "set_text" else "extended"
    if assumed:
        what += " (it was not uploaded: the kernel's default rules it assumed, plus the new lines)"
    fields: dict[str, Any] = {kind: value}
    return replace(ev, **fields), f"{FILE_NAMES[kind]} {what}"


_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/+-]*")


def _sysctl_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    key = (edit.key or "").strip()
    value = (edit.value or "").strip()
    if not _SYSCTL_KEY.fullmatch(key):
        raise _err(n, f"not a sysctl key: {key!r}", key, 1, 1)
    if not value or "\n" in value:
        raise _err(n, f"the sysctl {key} needs a one-line value", value, 1, 1)
    old = ev.sysctl or ""
    lines = old.split("\n")
    pattern = re.compile(rf"^(\s*{re.escape(key)}\s*=\s*)(.*?)(\s*)$")
    found = False
    for i, ln in enumerate(lines):
        m = pattern.match(ln)
        if m is not None:
            lines[i] = f"{m.group(1)}{value}{m.group(3)}"
            found = True
    if found:
        new = "\n".join(lines)
    else:
        new = (old if not old or old.endswith("\n") else old + "\n") + f"{key} = {value}\n"
    errors = _check_text("sysctl", new, n, ev)
    if errors:
        raise _EditFailed(errors)
    return replace(ev, sysctl=new), f"sysctl {key} = {value}"


_CLUSTER_KEYS = {
    "connect_timeout",
    "connectTimeout",
    "type",
    "lb_policy",
    "lbPolicy",
    "cluster_type",
    "clusterType",
    "eds_cluster_config",
    "edsClusterConfig",
    "load_assignment",
    "loadAssignment",
}


def _iter_clusters(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        if "name" in obj and obj.keys() & _CLUSTER_KEYS and not obj.keys() & {"filter_chains", "filterChains"}:
            yield obj
            return
        for k, v in obj.items():
            if k in ("error_state", "errorState"):
                continue
            yield from _iter_clusters(v)
    elif isinstance(obj, list):
        for item in obj:
            yield from _iter_clusters(item)


def _dump_like(original: str, obj: Any) -> str:
    """JSON text in the original's layout (indent width, ASCII escaping, final newline)."""
    m = re.match(r"[\[{]\r?\n( +|\t)", original)
    indent: int | str | None = None
    if m is not None:
        indent = "\t" if m.group(1) == "\t" else len(m.group(1))
    ascii_only = original.isascii()
    text = json.dumps(obj, indent=indent, ensure_ascii=ascii_only)
    return text + ("\n" if original.endswith("\n") else "")


def _envoy_edit(ev: Evidence, edit: Edit, n: int) -> tuple[Evidence, str]:
    if not ev.envoy:
        raise _err(n, "there is no Envoy config dump to edit")
    try:
        dump = json.loads(ev.envoy)
    except ValueError as e:
        raise _err(n, f"the Envoy config dump is not JSON: {e}") from e
    changes: list[str] = []
    if edit.op == "envoy_original_src":
        listener = edit.listener or "virtualInbound"
        names = {str(lst.get("name")) for lst in iter_listeners(dump)}
        if listener not in names and not any(x.startswith(listener) for x in names if listener == "virtualInbound"):
            raise _err(n, f"no listener {listener!r} in the Envoy config (it has {', '.join(sorted(names))})", listener)
        if edit.mark is not None and not 0 <= edit.mark <= 0xFFFFFFFF:
            raise _err(n, f"the mark must be a 32-bit unsigned integer, not {edit.mark}", str(edit.mark))
        set_original_src(dump, (listener,), edit.mark, changes)
    else:
        address = (edit.address or "").strip()
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError as e:
                raise _err(n, f"not an IP address: {address!r}", address, 1, 1) from e
        clusters = list(_iter_clusters(dump))
        if edit.cluster:
            chosen = [c for c in clusters if c.get("name") == edit.cluster]
            if not chosen:
                raise _err(n, f"no cluster {edit.cluster!r} in the Envoy config", edit.cluster)
        else:
            chosen = [
                c for c in clusters if str(c.get("name", "")).startswith(("inbound|", "InboundPassthroughCluster"))
            ]
            if not chosen:
                raise _err(n, "the Envoy config has no inbound clusters (name one with `cluster`)")
        for c in chosen:
            k = _key(c, "upstream_bind_config")
            bind = c.get(k)
            if not address:
                if isinstance(bind, dict):
                    sk = _key(bind, "source_address")
                    if sk in bind:
                        del bind[sk]
                        changes.append(f"cluster {c.get('name')}: upstream bind address removed")
                    if not bind:
                        del c[k]
                continue
            if not isinstance(bind, dict):
                bind = c[k] = {}
            sk = _key(bind, "source_address")
            sa = bind.get(sk) if isinstance(bind.get(sk), dict) else None
            if sa is None:
                sa = bind[sk] = {"address": address, _key(c, "port_value"): 0}
                changes.append(f"cluster {c.get('name')}: upstream bind address {address}")
            elif sa.get("address") != address:
                sa["address"] = address
                changes.append(f"cluster {c.get('name')}: upstream bind address set to {address}")
    if not changes:
        return ev, f"{edit.describe()}: already so, nothing changed"
    text = _dump_like(ev.envoy, dump)
    errors = _check_text("envoy", text, n, ev)
    if errors:
        raise _EditFailed(errors)
    return replace(ev, envoy=text), "; ".join(changes)
