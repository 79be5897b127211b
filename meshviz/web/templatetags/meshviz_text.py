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
