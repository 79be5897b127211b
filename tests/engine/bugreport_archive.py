"""An `istioctl bug-report` archive laid out like Istio's tool writes it (tools/bug-report: archive.go,
content.go, common.go), built from the recorded sidecar dumps in tests/fixtures/envoy (copies of
shared/corpus/envoy-config-dumps, licences in tests/fixtures/envoy/SOURCES.md).

    bug-report/bug-report.log
    bug-report/cluster/k8s-resources            kubectl get --all-namespaces all,... -o yaml  (a List)
    bug-report/cluster/{cluster-context,kubectl-version,nodes,events,secrets,crs}
    bug-report/analyze/all                      istioctl analyze
    bug-report/istio/istio-system/<istiod>/debug/{syncz,configz}, discovery.log
    bug-report/proxies/<ns>/<pod>/{config_dump,clusters,listeners,certs,server_info,stats/prometheus,netstat}
    bug-report/proxies/<ns>/<pod>/istio-proxy.log

Three sidecar pods: hr2/geo (Istio 1.18.2, REDIRECT), hr2-tproxy/geo (TPROXY, original_src) and
default/productpage-v1 (Istio 1.4, REDIRECT); plus a pod without a sidecar and istiod, which are not listed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.engine.archives import member, tar_gz
from tests.kube.fake_apiserver import PROXY_IMAGE, istio_pod, plain_pod

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GEO = "geo-5c54dcd5bd-z5ghf"
PRODUCTPAGE = "productpage-v1-c7765c886-v99jb"
DUMPS = {
    ("hr2", GEO): FIXTURES / "scenarios" / "01-redirect-istio-1.18-app-sees-127.0.0.6" / "envoy.json",
    ("hr2-tproxy", GEO): FIXTURES / "envoy" / "tproxy-original-src.json",
    ("default", PRODUCTPAGE): FIXTURES / "envoy" / "istio-1.4-sidecar-productpage.json",
}


def productpage_pod() -> dict[str, Any]:
    """The productpage pod as Istio 1.4's injector wrote it, from the metadata recorded in its dump."""
    dump = json.loads(DUMPS[("default", PRODUCTPAGE)].read_text())
    meta = dump["configs"][0]["bootstrap"]["node"]["metadata"]
    image = "docker.io/istio/proxyv2:1.4.0"
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": meta["NAME"],
            "namespace": meta["NAMESPACE"],
            "labels": meta["LABELS"],
            "annotations": {"sidecar.istio.io/status": '{"version":"1.4","initContainers":["istio-init"]}'},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "productpage-v1-c7765c886", "controller": True}],
        },
        "spec": {
            "initContainers": [
                {
                    "name": "istio-init",
                    "image": image,
                    "command": ["istio-iptables"],
                    "args": [
                        "-p",
                        "15001",
                        "-z",
                        "15006",
                        "-u",
                        "1337",
                        "-m",
                        "REDIRECT",
                        "-i",
                        "*",
                        "-x",
                        "",
                        "-b",
                        "9080",
                        "-d",
                        "15020",
                    ],
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0},
                }
            ],
            "containers": [
                {
                    "name": "productpage",
                    "image": "docker.io/istio/examples-bookinfo-productpage-v1:1.15.0",
                    "ports": [{"containerPort": 9080, "protocol": "TCP"}],
                },
                {
                    "name": "istio-proxy",
                    "image": image,
                    "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "readOnlyRootFilesystem": True},
                },
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": meta["INSTANCE_IPS"].split(",")[0],
            "podIPs": [{"ip": ip} for ip in meta["INSTANCE_IPS"].split(",")[:1]],
        },
    }


def istiod_pod() -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "istiod-7c8d9f-abcde", "namespace": "istio-system", "labels": {"app": "istiod"}},
        "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.18.2"}]},
        "status": {"phase": "Running", "podIP": "10.244.0.5"},
    }


def pods() -> list[dict[str, Any]]:
    return [istio_pod("hr2", False), istio_pod("hr2-tproxy", True), productpage_pod(), plain_pod("hr2"), istiod_pod()]


def bug_report_archive(*, extra: list[Any] | None = None, resources: str | None = None) -> bytes:
    # (through JSON first: shared sub-objects would become YAML aliases, which kubectl never writes)
    listing = json.loads(json.dumps({"apiVersion": "v1", "kind": "List", "items": pods()}))
    k8s = resources if resources is not None else yaml.safe_dump(listing)
    members = [
        member("bug-report/bug-report.log", b"2026-11-22T06:20:00Z info Running analyze...\n"),
        member("bug-report/cluster/k8s-resources", k8s.encode()),
        member("bug-report/cluster/cluster-context", b"kind-mesh\nhttps://127.0.0.1:6443\n"),
        member("bug-report/cluster/kubectl-version", b"Client Version: v1.29.0\nServer Version: v1.29.0\n"),
        member("bug-report/cluster/secrets", b"NAMESPACE NAME TYPE DATA AGE\n"),
        member("bug-report/analyze/all", b"Info [IST0102] (Namespace default) The namespace is not enabled\n"),
        member("bug-report/istio/istio-system/istiod-7c8d9f-abcde/debug/syncz", b"[]\n"),
        member("bug-report/istio/istio-system/istiod-7c8d9f-abcde/discovery.log", b"info ads ADS: new connection\n"),
    ]
    for (ns, name), dump in DUMPS.items():
        base = f"bug-report/proxies/{ns}/{name}"
        members += [
            member(f"{base}/config_dump", dump.read_bytes()),
            member(
                f"{base}/clusters",
                b"outbound|9080||reviews.default.svc.cluster.local::default_priority::max_connections::4294967295\n",
            ),
            member(f"{base}/listeners", b'[{"name":"virtualInbound"}]\n'),
            member(f"{base}/server_info", b'{"state":"LIVE"}\n'),
            member(f"{base}/stats/prometheus", b"envoy_server_live 1\n"),
            member(f"{base}/netstat", b"Active Internet connections (servers and established)\n"),
            member(f"{base}/istio-proxy.log", b"2026-11-22T06:02:11Z info Envoy proxy is ready\n"),
        ]
    return tar_gz(members + (extra or []))


__all__ = ["GEO", "PRODUCTPAGE", "PROXY_IMAGE", "bug_report_archive", "pods"]
