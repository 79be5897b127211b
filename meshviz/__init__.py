"""meshviz: simulate how a sidecar pod's iptables, policy routing and Envoy config handle a connection.

Kept import-free on purpose: ``meshviz.engine`` must import without Django or Celery.
The Celery app lives in ``meshviz.celery`` and is loaded by ``meshviz.web`` when Django starts
(``celery -A meshviz`` finds it there by itself).
"""
