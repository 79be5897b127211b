"""Istio's defaults: the values the engine assumes only when the evidence is silent.

The pod profile (evidence/profile.py) reads each fact from the evidence first; a default used instead is
stated as an assumption in the findings.
"""

from __future__ import annotations

# Istio's defaults: used only when the evidence does not say, and then stated as assumptions.
DEFAULT_POD_IFACE = "eth0"
DEFAULT_PROXY_UID = 1337  # a REDIRECT sidecar; Istio runs a TPROXY sidecar as root
DEFAULT_PROXY_GID = 1337
DEFAULT_TPROXY_MARK = 1337
DEFAULT_TPROXY_TABLE = 133
DEFAULT_INBOUND_PORT = 15006
DEFAULT_OUTBOUND_PORT = 15001
DEFAULT_APP_UID = 1000
DEFAULT_APP_GID = 1000
#: Istio's own ports on a sidecar: never the application's.
ISTIO_PORTS = {
    15000: "admin",
    15001: "outbound",
    15004: "debug",
    15006: "inbound",
    15008: "tunnel",
    15009: "tunnel (HBONE)",
    15020: "status",
    15021: "health",
    15053: "dns",
    15090: "prometheus",
}
