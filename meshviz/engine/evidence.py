"""One pod's evidence as the user gave it (texts), plus who is who in the pod.

The fix and the comparison patch evidence and re-run the story on it, so the
patched evidence is always something a user could have uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshviz.engine.errors import EngineInputError
from meshviz.engine.story import Story


@dataclass(frozen=True)
class Evidence:
    iptables: str
    pod_ip: str
    ip_rule: str | None = None
    ip_route: str | None = None
    sysctl: str | None = None
    envoy: str | None = None
    proxy_uid: int | None = None
    proxy_gid: int | None = None
    proxy_net_admin: bool | None = None
    app_ports: tuple[int, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    pod_name: str | None = None
    namespace: str | None = None
    workload: str | None = None  # e.g. "deployment/reviews-v1", for kubectl patches


def story_for(ev: Evidence, *, client: str, port: int) -> Story:
    """The inbound story of `client` -> pod:`port` on this evidence (raises on input errors)."""
    return _story(ev, direction="inbound", client=client, port=port)


def outbound_story_for(ev: Evidence, *, dst: str, app_uid: int, app_gid: int) -> Story:
    """The story of a connection the application (uid/gid) opens to `dst`."""
    return _story(ev, direction="outbound", dst=dst, app_uid=app_uid, app_gid=app_gid)


def _story(ev: Evidence, **connection: Any) -> Story:
    from meshviz.engine.api import run_story

    r = run_story(
        iptables=ev.iptables,
        ip_rule=ev.ip_rule,
        ip_route=ev.ip_route,
        sysctl=ev.sysctl,
        envoy=ev.envoy,
        pod_ip=ev.pod_ip,
        proxy_uid=ev.proxy_uid,
        proxy_gid=ev.proxy_gid,
        proxy_net_admin=ev.proxy_net_admin,
        app_ports=ev.app_ports,
        **connection,
    )
    if r.errors:
        raise EngineInputError(list(r.errors))
    assert r.story is not None
    return r.story
