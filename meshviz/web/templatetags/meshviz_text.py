"""Filters that turn the engine's sentences into web text: `name` in backticks becomes <code>name</code>,
True/False become yes/no, field names become words."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_TICKED = re.compile(r"`([^`\n]{1,400})`")


@register.filter(is_safe=True)
def codespans(text: Any) -> SafeString:
    """Escape `text`, then show its `backticked` parts as code (no literal backticks on the page)."""
    escaped = str(conditional_escape("" if text is None else text))
    return mark_safe(_TICKED.sub(r"<code>\1</code>", escaped).replace("`", ""))


@register.filter
def yesno_value(value: Any) -> Any:
    """A verdict value for people: yes/no for booleans, a dash for nothing, anything else as it is."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None or value == "":
        return "—"
    return value


#: the engine's verdict keys, as a person reads them
VERDICT_WORDS = {
    "loop": "Envoy loops into itself",
    "failure": "failure",
    "app_peer_ip": "address the application sees",
    "app_reached": "reaches the application",
    "intercepted": "captured by the sidecar",
    "app_would_see": "address the application would see",
    "client_connected": "the client connects",
    "destination_peer_ip": "address the destination sees",
    "destination_reached": "reaches the destination",
}


@register.filter
def verdict_word(key: Any) -> str:
    k = str(key)
    return VERDICT_WORDS.get(k, k.replace("_", " "))


#: what to do about a failed cluster check or collection, by CollectError kind
COLLECT_FIXES = {
    "forbidden": "The credentials are not allowed to do this. Give them the rights in the RBAC example on the "
    "Clusters page (read pods, exec into them), or use credentials that have them.",
    "not_found": "The pod or namespace does not exist any more: pick it again from the namespace's pod list.",
    "timeout": "The cluster did not answer in time. Check that the API server is reachable from meshviz, then "
    "check again.",
    "unreachable": "meshviz could not reach the API server. Check the server address in the kubeconfig and that "
    "meshviz's network may reach it, then check again.",
    "invalid_kubeconfig": "The kubeconfig cannot be used. Export one with embedded credentials (kubectl config view "
    "--minify --flatten) and add the cluster again; delete this one.",
}


@register.filter
def collect_fix(kind: Any) -> str:
    """The fix for a failed cluster check or collection of this kind, in plain words."""
    return COLLECT_FIXES.get(str(kind), "Check again; if it keeps failing, delete the cluster and add it again.")


@register.filter
def collect_kind(kind: Any) -> str:
    """A CollectError kind as words."""
    return str(kind).replace("_", " ")
