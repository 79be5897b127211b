"""An IPv6-only pod on a Multus-style `net1` interface, with an OpenShift-assigned proxy uid: every fact comes
from its own evidence (ip6tables-save, `ip -6 route show table all`), nothing from eth0/1337 defaults."""

import json
import subprocess
import sys
from pathlib import Path

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ipv6"


RULES = ["--ip6tables", str(FIX / "ip6tables-redirect-openshift-uid")]


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshviz.engine", "story", *RULES, *args], capture_output=True, text=True, check=check
    )


def _story(*extra: str) -> dict:
    routes = ["--ip6-route", str(FIX / "ip6-route-net1")]
    out = _cli(*routes, "--client", "[fd00:80::1]:40000", "--port", "8080", "--format", "json", *extra)
    return json.loads(out.stdout)


def test_the_ipv6_client_reaches_the_app_through_envoy_bound_to_colon_colon_6() -> None:
    st = _story()
    assert st["verdict"] == {
        "client_connected": True,
        "intercepted": True,
        "app_reached": True,
        "app_peer_ip": "::6",
        "app_would_see": None,
        "loop": False,
        "failure": None,
    }


def test_pod_ip_interface_and_proxy_uid_come_from_the_evidence() -> None:
    st = _story()
    profile = st["facts"]["profile"]
    assert profile["pod_ips"] == ["fd00:80::10"]
    assert profile["pod_iface"] == "net1"
    assert profile["proxy_uid"] == 1000730000
    assert st["facts"]["ingress_interface"] == "net1"
    text = " ".join(f["text"] for f in st["findings"])
    assert "eth0" not in text
    assert "uid 1337" not in text


def test_an_unbracketed_ipv6_destination_is_a_usage_error() -> None:
    out = _cli("--client", "fd00:80::1:40000", "--port", "8080", check=False)
    assert out.returncode == 1
    assert "error" in out.stderr.lower()
