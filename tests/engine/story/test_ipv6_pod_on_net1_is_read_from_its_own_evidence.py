"""An IPv6-only pod on a Multus-style `net1` interface, with an OpenShift-assigned proxy uid: every fact comes
from its own evidence (ip6tables-save, `ip -6 route show table all`), nothing from eth0/1337 defaults."""

import json
import subprocess
import sys
from pathlib import Path

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "ipv6"


def _story(*extra: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshviz.engine",
            "story",
            "--ip6tables",
            str(FIX / "ip6tables-redirect-openshift-uid"),
            "--ip6-route",
            str(FIX / "ip6-route-net1"),
            "--client",
            "[fd00:80::1]:40000",
            "--port",
            "8080",
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
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
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshviz.engine",
            "story",
            "--ip6tables",
            str(FIX / "ip6tables-redirect-openshift-uid"),
            "--client",
            "fd00:80::1:40000",
            "--port",
            "8080",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode in (1, 2)
    assert "error" in out.stderr.lower()
