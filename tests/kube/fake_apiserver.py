"""A small fake Kubernetes API server for tests: real HTTP (and websocket exec) on 127.0.0.1.

The official `kubernetes` client talks to it over a real socket, exactly as it would to a cluster, through
a kubeconfig this server generates (bearer token required: a request without it gets 401).

    with FakeApiServer() as fake:                  # or the `fake_apiserver` pytest fixture (conftest.py)
        fake.scenario = Scenario.istio()           # the REDIRECT and TPROXY Istio pods (the default)
        fake.scenario.forbid("patch", "pods", "ephemeralcontainers")   # RBAC says no -> 403
        api = api_client(kubeconfig=fake.kubeconfig)
        ...
        fake.requests                              # every request received, in order (RecordedRequest)
        fake.captures                              # the capture containers it ran (CaptureRun)

Endpoints: `GET /api/v1/namespaces`, `GET /api/v1/namespaces/{ns}/pods`, `GET .../pods/{name}`,
`PATCH .../pods/{name}/ephemeralcontainers` (strategic merge, JSON merge or JSON patch, as sent),
`GET .../pods/{name}/log?container=`, `GET .../pods/{name}:15000/proxy/config_dump`,
`POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`, and exec (`GET|POST .../pods/{name}/exec`)
upgraded to a websocket with subprotocol `v4.channel.k8s.io` or `v5.channel.k8s.io` (kubectl's; channel 1
stdout, 2 stderr, 3 the status).  Discovery (`/api`, `/api/v1`, `/apis`, `/version`) is served for kubectl, and
`FakeApiServer(tls=True)` serves HTTPS with a throwaway certificate (kubectl sends no bearer token over HTTP).

What the pods are (`Scenario.istio()`): namespace `hr2` holds `geo-5c54dcd5bd-z5ghf`, an Istio 1.18.2 pod
in REDIRECT mode, and `redis-0` without a sidecar; namespace `hr2-tproxy` holds the same workload in TPROXY
mode (Envoy uid 0 / gid 1337 with NET_ADMIN, original_src).  The pod objects are written like real injected
pods from the metadata in the recorded Envoy dumps (name, labels, annotations, node, IP, image 1.18.2); the
Envoy dumps are `tests/fixtures/scenarios/01-.../envoy.json` and `tests/fixtures/envoy/tproxy-original-src.json`;
the pod's netfilter state is Istio's own goldens (`tests/fixtures/corpus/istio-cni/plugin/basic.txt.golden`,
`tproxy.txt.golden`) rendered as iptables-save output, with the `ip rule`/`ip route`/sysctl listings of
`tests/fixtures/scenarios/04-...` (licences: the SOURCES.md files there).

Capture containers really run: the command of an ephemeral container (`sh -c SCRIPT`) is executed with
`sh` on the test machine, with the image's tools replaced by stubs printing the pod's data (the legacy
backend holds the rules, nft only has empty tables and the "legacy tables present" warning, like a real
node; the script's `/proc/sys` is a directory holding the pod's sysctls).  Which tools exist depends on the
image (`tools_for_image`, or `scenario.image_tools[image]`): Istio's proxyv2 has iptables*, ip, pilot-agent
and curl but no sysctl (no procps); netshoot has iptables*, ip, sysctl, curl and wget; any other image only
iptables* and ip; a `-distroless` image has no shell, so its container ends in StartError (exit 128).
`pilot-agent request GET config_dump`, `curl`/`wget http://127.0.0.1:15000/config_dump` print the pod's
Envoy dump (the capture container shares the pod's network namespace; `[::1]` is refused: Envoy's admin
listener is bound to 127.0.0.1).  The script's output is what `GET .../log?container=` returns.  The
container's status goes waiting -> running -> terminated over the next reads of the pod (`terminate_after`
reads), or stays running (`never_terminate`).

Scenario knobs (all plain attributes or methods on `Scenario`):
  forbid(verb, resource, subresource="")     403 for those requests; access reviews say not allowed
  enforce_pod_security("baseline", status=403)  Pod Security admission on the namespaces: the patched pod
                                              is evaluated (capabilities, runAsUser=0, runAsNonRoot, ...)
                                              and refused with the real message (`pod_security_message`);
                                              status=422 for a policy answering Invalid
  reject_ephemeral = (422, "...")             any other refusal of the capture container, verbatim
  image_tools[image] = PROXYV2_TOOLS | None   what a capture image holds (None: no shell)
  exec_http_error = (400, "container not found (\"istio-proxy\")")  exec refused before the upgrade
  exec_exit = (127, "executable file not found")   exec runs but fails (channel 3 Failure)
  fail(method, path_regex, times=1, status=500)   transient failures (then success)
  gone.add((ns, name))                        the pod is deleted (404 everywhere)
  never_terminate = True                      the capture container never terminates
  admin_port_status = 503                     the pod proxy to :15000 fails (as a 127.0.0.1 admin bind does)
  terminate_after = 2                         pod reads before the capture container terminates
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_ruleset

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TOKEN = "fake-token-0123456789abcdef"  # what the generated kubeconfig carries

REDIRECT_NS, TPROXY_NS = "hr2", "hr2-tproxy"
POD_NAME = "geo-5c54dcd5bd-z5ghf"
POD_IP = "172.16.188.31"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.18.2"


# --------------------------------------------------------------------------
# Payloads built from the recorded fixtures
# --------------------------------------------------------------------------


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def iptables_save_text(golden: Path) -> str:
    """An Istio golden (restore payload) as the pod's `iptables-save` would print it."""
    parsed = parse_iptables(_read(golden), source=str(golden))
    assert parsed.ok, parsed.errors
    body = "".join(render_ruleset(rs) for rs in parsed.rulesets)
    out: list[str] = []
    for line in body.splitlines():
        if line.startswith("# Generated by"):
            continue  # the renderer's own header; iptables-save's is written below
        if line.startswith("*"):
            out.append("# Generated by iptables-save v1.8.7 on Sun Nov 22 06:12:40 2026")
        out.append(line)
        if line == "COMMIT":
            out.append("# Completed on Sun Nov 22 06:12:40 2026")
    return "\n".join(out) + "\n"


NFT_EMPTY = """# Warning: iptables-legacy tables present, use iptables-legacy-save to see them
# Generated by iptables-nft-save v1.8.7 on Sun Nov 22 06:12:40 2026
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
# Completed on Sun Nov 22 06:12:40 2026
"""


def _scenario04(name: str) -> str:
    return _read(FIXTURES / "scenarios" / "04-tproxy-original-src-app-sees-client" / name)


def ip_rule_text(tproxy: bool) -> str:
    lines = _scenario04("ip-rule").splitlines()
    return "\n".join(line for line in lines if tproxy or "fwmark" not in line) + "\n"


def ip_route_text(tproxy: bool) -> str:
    lines = _scenario04("ip-route").splitlines()
    return "\n".join(line for line in lines if tproxy or "table 133" not in line) + "\n"


def sysctl_all_text() -> str:
    """`sysctl -a`-like output: the modelled keys of scenario 04 among others the capture filters out."""
    noise = [
        "kernel.hostname = geo-5c54dcd5bd-z5ghf",
        "net.core.somaxconn = 4096",
        "net.ipv4.conf.eth0.arp_announce = 0",
        "net.ipv4.tcp_syncookies = 1",
        "net.ipv6.conf.all.disable_ipv6 = 1",
    ]
    return "\n".join([*noise[:2], *_scenario04("sysctl").splitlines(), *noise[2:]]) + "\n"


def config_dump(tproxy: bool) -> str:
    if tproxy:
        return _read(FIXTURES / "envoy" / "tproxy-original-src.json")
    return _read(FIXTURES / "scenarios" / "01-redirect-istio-1.18-app-sees-127.0.0.6" / "envoy.json")


def _dump_metadata(tproxy: bool) -> dict[str, Any]:
    node = json.loads(config_dump(tproxy))["configs"][0]["bootstrap"]["node"]
    return dict(node["metadata"])


def istio_pod(namespace: str, tproxy: bool) -> dict[str, Any]:
    """A Pod object like the one the Istio 1.18.2 injector produces, from the dump's recorded metadata."""
    meta = _dump_metadata(tproxy)
    mode = "TPROXY" if tproxy else "REDIRECT"
    annotations = {
        k: v
        for k, v in meta["ANNOTATIONS"].items()
        if not k.startswith("kubernetes.io/config.")  # kubelet-only, not on the API object
    }
    annotations["sidecar.istio.io/interceptionMode"] = mode
    if tproxy:
        annotations["sidecar.istio.io/interceptionMode"] = "TPROXY"
    labels = dict(meta["LABELS"])
    labels["pod-template-hash"] = "5c54dcd5bd"
    init_args = [
        "istio-iptables",
        "-p",
        "15001",
        "-z",
        "15006",
        "-u",
        "1337",
        "-m",
        mode,
        "-i",
        "*",
        "-x",
        "",
        "-b",
        "*",
        "-d",
        "15090,15021,15020",
        "--log_output_level=default:info",
    ]
    proxy_sc: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": 1337,
        "runAsNonRoot": True,
        "runAsUser": 1337,
    }
    if tproxy:
        proxy_sc.update(
            {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "runAsNonRoot": False, "runAsUser": 0}
        )
    running = {"running": {"startedAt": "2026-11-22T06:02:11Z"}}
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": POD_NAME,
            "generateName": "geo-5c54dcd5bd-",
            "namespace": namespace,
            "uid": "3f9e1c2a-7b1d-4c55-9a37-0d2b6f1f4e21" if not tproxy else "8a41d0c4-2f3e-4f7b-b9a1-5c6d7e8f9a0b",
            "resourceVersion": "184467",
            "creationTimestamp": "2026-11-22T06:01:58Z",
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "geo-5c54dcd5bd",
                    "uid": "c0a8e3b2-1d4f-4e6a-8b7c-9d0e1f2a3b4c",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "initContainers": [
                {
                    "name": "istio-init",
                    "image": PROXY_IMAGE,
                    "args": init_args,
                    "resources": {
                        "limits": {"cpu": "2", "memory": "1Gi"},
                        "requests": {"cpu": "10m", "memory": "40Mi"},
                    },
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                        "privileged": False,
                        "readOnlyRootFilesystem": False,
                        "runAsGroup": 0,
                        "runAsNonRoot": False,
                        "runAsUser": 0,
                    },
                }
            ],
            "containers": [
                {
                    "name": "hotel-reserv-geo",
                    "image": "docker.io/deathstarbench/hotel-reservation:latest",
                    "command": ["geo"],
                    "ports": [{"containerPort": 8083, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}},
                    "imagePullPolicy": "IfNotPresent",
                },
                {
                    "name": "istio-proxy",
                    "image": PROXY_IMAGE,
                    "args": [
                        "proxy",
                        "sidecar",
                        "--domain",
                        "$(POD_NAMESPACE).svc.cluster.local",
                        "--proxyLogLevel=warning",
                        "--proxyComponentLogLevel=misc:error",
                        "--log_output_level=default:info",
                    ],
                    "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
                    "env": [
                        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
                        {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "ISTIO_META_APP_CONTAINERS", "value": "hotel-reserv-geo"},
                        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": mode},
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                        "periodSeconds": 15,
                    },
                    "securityContext": proxy_sc,
                    "imagePullPolicy": "IfNotPresent",
                },
            ],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
            "nodeName": meta["NODE_NAME"],
            "securityContext": {},
            "dnsPolicy": "ClusterFirst",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "hostIP": meta["NODE_NAME"],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": "2026-11-22T06:01:58Z",
            "initContainerStatuses": [
                {
                    "name": "istio-init",
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    "ready": True,
                    "restartCount": 0,
                    "image": PROXY_IMAGE,
                }
            ],
            "containerStatuses": [
                {"name": "hotel-reserv-geo", "state": running, "ready": True, "restartCount": 0},
                {"name": "istio-proxy", "state": running, "ready": True, "restartCount": 0, "image": PROXY_IMAGE},
            ],
            "qosClass": "Burstable",
        },
    }


def plain_pod(namespace: str) -> dict[str, Any]:
    """A pod without a sidecar (redis, not injected)."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "redis-0", "namespace": namespace, "labels": {"app": "redis"}, "annotations": {}},
        "spec": {
            "containers": [
                {"name": "redis", "image": "docker.io/library/redis:7.2", "ports": [{"containerPort": 6379}]}
            ],
            "nodeName": "192.168.0.19",
        },
        "status": {
            "phase": "Running",
            "podIP": "172.16.188.40",
            "podIPs": [{"ip": "172.16.188.40"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "redis", "state": {"running": {}}, "ready": True}],
        },
    }


@dataclass
class PodData:
    """What the pod's network namespace holds (printed by the stubbed commands) and Envoy's dump."""

    iptables_legacy: str
    ip_rule: str
    ip_route: str
    sysctl_all: str
    config_dump: str
    iptables_nft: str = NFT_EMPTY
    ip6tables_legacy: str = ""
    ip6_rule: str = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n"
    ip6_route: str = "local ::1 dev lo table local proto kernel metric 0 pref medium\n"
    addr: str = (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
        f"3: eth0    inet {POD_IP}/32 scope global eth0\\       valid_lft forever preferred_lft forever\n"
    )
    nft_ruleset: str = "table ip nat {\n}\n"


def redirect_data() -> PodData:
    golden = FIXTURES / "corpus" / "istio-cni" / "plugin" / "basic.txt.golden"
    return PodData(
        iptables_save_text(golden), ip_rule_text(False), ip_route_text(False), sysctl_all_text(), config_dump(False)
    )


def tproxy_data() -> PodData:
    golden = FIXTURES / "corpus" / "istio-cni" / "plugin" / "tproxy.txt.golden"
    return PodData(
        iptables_save_text(golden), ip_rule_text(True), ip_route_text(True), sysctl_all_text(), config_dump(True)
    )


# --------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    times: int
    status: int


@dataclass
class Scenario:
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], PodData] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    forbidden: set[tuple[str, str, str]] = field(default_factory=set)
    reject_ephemeral: tuple[int, str] | None = None
    exec_http_error: tuple[int, str] | None = None
    exec_exit: tuple[int, str] | None = None
    failures: list[Failure] = field(default_factory=list)
    gone: set[tuple[str, str]] = field(default_factory=set)
    never_terminate: bool = False
    admin_port_status: int = 200
    terminate_after: int = 2
    pod_security: str | None = None
    pod_security_status: int = 403
    image_tools: dict[str, frozenset[str] | None] = field(default_factory=dict)

    @classmethod
    def istio(cls) -> Scenario:
        s = cls(namespaces=["default", "istio-system", REDIRECT_NS, TPROXY_NS])
        s.add_pod(istio_pod(REDIRECT_NS, tproxy=False), redirect_data())
        s.add_pod(plain_pod(REDIRECT_NS))
        s.add_pod(istio_pod(TPROXY_NS, tproxy=True), tproxy_data())
        return s

    def add_pod(self, pod: dict[str, Any], data: PodData | None = None) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.pods[key] = pod
        if data is not None:
            self.data[key] = data

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.pods[(namespace, name)]

    def forbid(self, verb: str, resource: str, subresource: str = "") -> None:
        self.forbidden.add((verb, resource, subresource))

    def enforce_pod_security(self, level: str, status: int = 403) -> None:
        """Label the namespaces `pod-security.kubernetes.io/enforce=<level>` ("baseline"/"restricted"):
        the ephemeral container patch is evaluated like Pod Security admission does and refused with
        `status` (403 Forbidden is what the real admission plugin answers; 422 what e.g. a
        ValidatingAdmissionPolicy with reason Invalid answers) and the realistic message."""
        if level not in ("baseline", "restricted"):
            raise ValueError(f"unknown Pod Security level {level!r}")
        self.pod_security, self.pod_security_status = level, status

    def tools_for(self, image: str) -> frozenset[str] | None:
        """The tools a capture image holds: `image_tools[image]` if set, else by its name (`tools_for_image`)."""
        if image in self.image_tools:
            return self.image_tools[image]
        return tools_for_image(image)

    def fail(self, method: str, path_regex: str, times: int = 1, status: int = 500) -> None:
        self.failures.append(Failure(method.upper(), re.compile(path_regex), times, status))

    def set_proxy_state(self, namespace: str, name: str, state: dict[str, Any], ready: bool = False) -> None:
        for cs in self.pod(namespace, name)["status"]["containerStatuses"]:
            if cs["name"] == "istio-proxy":
                cs["state"] = state
                cs["ready"] = ready


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any
    websocket: bool = False
    status: int = 0

    @property
    def command(self) -> list[str]:
        return self.query.get("command", [])


@dataclass
class CaptureRun:
    namespace: str
    pod: str
    container: dict[str, Any]
    log: str = ""
    exit_code: int | None = None
    reads: int = 0


# --------------------------------------------------------------------------
# Running a capture container's command with stubbed tools
# --------------------------------------------------------------------------

_ADMIN = "127.0.0.1:15000"  # Envoy's admin listener: Istio binds it to localhost only
_STUBS = {
    "iptables-legacy-save": 'cat "$MESHVIZ_FAKE/iptables-legacy"',
    "iptables-nft-save": 'cat "$MESHVIZ_FAKE/iptables-nft"',
    "iptables-save": 'cat "$MESHVIZ_FAKE/iptables-nft"',
    "ip6tables-legacy-save": 'cat "$MESHVIZ_FAKE/ip6tables-legacy"',
    "ip6tables-nft-save": 'printf "# Generated by ip6tables-nft-save\\n"',
    "ip6tables-save": 'printf "# Generated by ip6tables-nft-save\\n"',
    "sysctl": '[ "$*" = "-a" ] || { echo "sysctl: unexpected arguments: $*" >&2; exit 2; }\ncat "$MESHVIZ_FAKE/sysctl"',
    "ip": (
        'case "$*" in\n'
        '  "rule show"|"rule"|"rule list") cat "$MESHVIZ_FAKE/ip-rule";;\n'
        '  "route show table all") cat "$MESHVIZ_FAKE/ip-route";;\n'
        '  "-6 rule show"|"-6 rule") cat "$MESHVIZ_FAKE/ip6-rule";;\n'
        '  "-6 route show table all") cat "$MESHVIZ_FAKE/ip6-route";;\n'
        '  "-o addr"|"-o addr show") cat "$MESHVIZ_FAKE/addr";;\n'
        '  *) echo "ip: unexpected arguments: $*" >&2; exit 255;;\n'
        "esac"
    ),
    "nft": (
        '[ "$*" = "list ruleset" ] || { echo "nft: unexpected arguments: $*" >&2; exit 1; }\n'
        'cat "$MESHVIZ_FAKE/nft-ruleset"'
    ),
    # pilot-agent request talks to Envoy's admin port on localhost: it works from any container sharing the
    # pod's network namespace (istio-proxy itself, or the capture container).
    "pilot-agent": (
        'case "$*" in\n'
        '  "request GET config_dump"|"request GET /config_dump") cat "$MESHVIZ_FAKE/config_dump";;\n'
        '  "request "*) echo "Error: unexpected request: $*" >&2; exit 1;;\n'
        '  *) echo "Error: unknown command \\"$1\\" for \\"pilot-agent\\"" >&2; exit 1;;\n'
        "esac"
    ),
    "curl": (
        'url=""; for a in "$@"; do case "$a" in http*) url=$a;; esac; done\n'
        'case "$url" in\n'
        f'  "http://{_ADMIN}/config_dump") cat "$MESHVIZ_FAKE/config_dump";;\n'
        "  *) h=${url#http://}; h=${h%%/*}\n"
        '     echo "curl: (7) Failed to connect to $h after 0 ms: Connection refused" >&2; exit 7;;\n'
        "esac"
    ),
    "wget": (
        'url=""; for a in "$@"; do case "$a" in http*) url=$a;; esac; done\n'
        'case "$url" in\n'
        f'  "http://{_ADMIN}/config_dump") cat "$MESHVIZ_FAKE/config_dump";;\n'
        '  *) echo "wget: can\'t connect to remote host: Connection refused" >&2; exit 1;;\n'
        "esac"
    ),
}

#: What every capture image has besides its tools (the script and the stubs use them).
_BASE_UTILS = ("cat", "grep", "tr")
#: Every stubbed tool (what `run_capture_command` offers unless told otherwise).
ALL_TOOLS: frozenset[str] = frozenset(_STUBS)
_NETFILTER = frozenset(t for t in _STUBS if t.startswith(("iptables", "ip6tables")) or t == "ip")
# (`nft` is not in Istio's proxyv2 image, which has the iptables package but not nftables; netshoot has it.)
#: Istio's proxyv2 (Ubuntu base: iptables legacy+nft, iproute2, curl; pilot-agent; no procps, so no sysctl).
PROXYV2_TOOLS: frozenset[str] = _NETFILTER | {"pilot-agent", "curl"}
#: nicolaka/netshoot (Alpine: iptables, iproute2, procps, curl, busybox wget; no pilot-agent).
NETSHOOT_TOOLS: frozenset[str] = _NETFILTER | {"sysctl", "curl", "wget", "nft"}
#: Any other image: a shell, iptables and iproute2 only.
MINIMAL_TOOLS: frozenset[str] = _NETFILTER

START_ERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create "
    'failed: unable to start container process: exec: "sh": executable file not found in $PATH: unknown'
)


def tools_for_image(image: str) -> frozenset[str] | None:
    """What a capture image holds in this fake; None: no shell at all (a distroless image)."""
    tag = image.rsplit("/", 1)[-1]
    if "distroless" in tag:
        return None
    if "proxyv2" in image:
        return PROXYV2_TOOLS
    if "netshoot" in image:
        return NETSHOOT_TOOLS
    return MINIMAL_TOOLS


def _proc_sys(data: PodData, root: Path) -> None:
    """The pod's /proc/sys as the container sees it: one file per `sysctl -a` line of the scenario."""
    for line in data.sysctl_all.splitlines():
        key, sep, value = line.partition(" = ")
        if not sep:
            continue
        path = root.joinpath(*key.strip().split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value.strip() + "\n")


def run_capture_command(
    command: list[str], data: PodData, workdir: Path, tools: frozenset[str] = ALL_TOOLS
) -> tuple[str, int]:
    """Run the container's command with `sh`, the tools replaced by stubs printing `data`; (output, status).

    Only `tools` exist in the "image": PATH is the stubs plus the test machine's `cat`, `grep` and `tr`
    (every image has those), nothing else of the test machine's; the script's `/proc/sys` is a directory holding the scenario's sysctls (the container's procfs is the pod
    network namespace's, not the test machine's).
    """
    bin_dir = workdir / "bin"
    data_dir = workdir / "data"
    proc_sys = workdir / "proc-sys"
    bin_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    for util in _BASE_UTILS:
        link = bin_dir / util
        found = shutil.which(util)
        if found and not link.exists():
            link.symlink_to(found)
    for name, body in _STUBS.items():
        if name not in tools:
            continue
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
    files = {
        "iptables-legacy": data.iptables_legacy,
        "iptables-nft": data.iptables_nft,
        "ip6tables-legacy": data.ip6tables_legacy,
        "sysctl": data.sysctl_all,
        "ip-rule": data.ip_rule,
        "ip-route": data.ip_route,
        "config_dump": data.config_dump,
        "ip6-rule": data.ip6_rule,
        "ip6-route": data.ip6_route,
        "addr": data.addr,
        "nft-ruleset": data.nft_ruleset,
    }
    for name, text in files.items():
        (data_dir / name).write_text(text)
    _proc_sys(data, proc_sys)
    if not command or command[0] not in ("sh", "/bin/sh"):
        return f'exec: "{command[0] if command else ""}": not what a capture container runs\n', 127
    args = [a.replace("cd /proc/sys ", f"cd {shlex.quote(str(proc_sys))} ") for a in command[1:]]
    env = {"PATH": str(bin_dir), "MESHVIZ_FAKE": str(data_dir), "LC_ALL": "C"}
    proc = subprocess.run(
        ["/bin/sh", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=30,
        check=False,
    )
    # A container's log interleaves stdout and stderr.
    return proc.stdout + proc.stderr, proc.returncode


# --------------------------------------------------------------------------
# Pod Security admission (the checks that concern a capture container)
# --------------------------------------------------------------------------

_BASELINE_CAPS = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _quote(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _containers_word(names: list[str]) -> str:
    return f"{'container' if len(names) == 1 else 'containers'} {_quote(names)}"


def pod_security_violations(spec: dict[str, Any], level: str) -> list[str]:
    """`reason (detail)` for each failed Pod Security check, worded and ordered like the
    pod-security-admission library (k8s.io/pod-security-admission/policy): baseline checks privileged and
    capabilities_baseline; restricted adds allowPrivilegeEscalation, capabilities_restricted (instead of
    the baseline one), runAsNonRoot, runAsUser and seccompProfile.  Other checks (host namespaces, volumes,
    ...) do not concern the pods in this fake."""
    containers = [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    ]

    def sc(c: dict[str, Any]) -> dict[str, Any]:
        return c.get("securityContext") or {}

    pod_sc = spec.get("securityContext") or {}
    checks: list[tuple[str, str, str]] = []  # (check id, reason, detail)
    privileged = [c["name"] for c in containers if sc(c).get("privileged") is True]
    if privileged:
        checks.append(
            (
                "privileged",
                "privileged",
                f"{_containers_word(privileged)} must not set securityContext.privileged=true",
            )
        )
    if level == "baseline":
        bad, caps = [], set()
        for c in containers:
            added = set(((sc(c).get("capabilities") or {}).get("add")) or []) - _BASELINE_CAPS
            if added:
                bad.append(c["name"])
                caps |= added
        if bad:
            checks.append(
                (
                    "capabilities_baseline",
                    "non-default capabilities",
                    f"{_containers_word(bad)} must not include {_quote(sorted(caps))} in "
                    "securityContext.capabilities.add",
                )
            )
    if level == "restricted":
        escalating = [c["name"] for c in containers if sc(c).get("allowPrivilegeEscalation") is not False]
        if escalating:
            checks.append(
                (
                    "allowPrivilegeEscalation",
                    "allowPrivilegeEscalation != false",
                    f"{_containers_word(escalating)} must set securityContext.allowPrivilegeEscalation=false",
                )
            )
        no_drop, adding, caps = [], [], set()
        for c in containers:
            capabilities = sc(c).get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                no_drop.append(c["name"])
            added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
            if added:
                adding.append(c["name"])
                caps |= added
        details = []
        if no_drop:
            details.append(f'{_containers_word(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
        if adding:
            details.append(
                f"{_containers_word(adding)} must not include {_quote(sorted(caps))} in "
                "securityContext.capabilities.add"
            )
        if details:
            checks.append(("capabilities_restricted", "unrestricted capabilities", "; ".join(details)))
        explicit = [c["name"] for c in containers if sc(c).get("runAsNonRoot") is False]
        implicit = [c["name"] for c in containers if "runAsNonRoot" not in sc(c)]
        if explicit or pod_sc.get("runAsNonRoot") is False:
            setters = (["pod"] if pod_sc.get("runAsNonRoot") is False else []) + (
                [_containers_word(explicit)] if explicit else []
            )
            checks.append(
                (
                    "runAsNonRoot",
                    "runAsNonRoot != true",
                    f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
                )
            )
        elif implicit and pod_sc.get("runAsNonRoot") is not True:
            checks.append(
                (
                    "runAsNonRoot",
                    "runAsNonRoot != true",
                    f"pod or {_containers_word(implicit)} must set securityContext.runAsNonRoot=true",
                )
            )
        root = [c["name"] for c in containers if sc(c).get("runAsUser") == 0]
        if root or pod_sc.get("runAsUser") == 0:
            setters = (["pod"] if pod_sc.get("runAsUser") == 0 else []) + ([_containers_word(root)] if root else [])
            checks.append(("runAsUser", "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"))
        if (pod_sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            unset = [c["name"] for c in containers if not sc(c).get("seccompProfile")]
            if unset:
                checks.append(
                    (
                        "seccompProfile_restricted",
                        "seccompProfile",
                        f"pod or {_containers_word(unset)} must set securityContext.seccompProfile.type to "
                        '"RuntimeDefault" or "Localhost"',
                    )
                )
    return [f"{reason} ({detail})" for _, reason, detail in sorted(checks)]


def pod_security_message(name: str, spec: dict[str, Any], level: str) -> str | None:
    """The API server's message when Pod Security admission (enforce=`level`) refuses the pod, else None."""
    violations = pod_security_violations(spec, level)
    if not violations:
        return None
    return f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": {", ".join(violations)}'


# --------------------------------------------------------------------------
# Strategic merge / JSON patch for ephemeralContainers
# --------------------------------------------------------------------------


def apply_ephemeral_patch(pod: dict[str, Any], content_type: str, body: Any) -> list[dict[str, Any]]:
    """Apply the patch to spec.ephemeralContainers; returns the containers that were added."""
    spec = pod.setdefault("spec", {})
    before = list(spec.get("ephemeralContainers") or [])
    names = {c["name"] for c in before}
    if "json-patch" in content_type:
        after = copy.deepcopy(before)
        for op in body:
            if op.get("op") != "add":
                raise ValueError(f"unsupported JSON patch op {op.get('op')!r}")
            if op["path"] == "/spec/ephemeralContainers/-":
                after.append(op["value"])
            elif op["path"] == "/spec/ephemeralContainers":
                after = list(op["value"])
            else:
                raise ValueError(f"unsupported JSON patch path {op['path']!r}")
    elif "strategic-merge-patch" in content_type:
        after = copy.deepcopy(before)
        for c in (body.get("spec") or {}).get("ephemeralContainers") or []:  # merge key: name
            existing = next((x for x in after if x["name"] == c["name"]), None)
            if existing is not None:
                raise ValueError(f"ephemeral container {c['name']!r} already exists and cannot be changed")
            after.append(c)
    elif "merge-patch" in content_type:
        after = list((body.get("spec") or {}).get("ephemeralContainers") or [])
    else:
        raise ValueError(f"unsupported patch content type {content_type!r}")
    for c in before:  # ephemeral containers cannot be removed or changed
        if c not in after:
            raise ValueError(f"ephemeral container {c['name']!r} may not be removed or changed")
    spec["ephemeralContainers"] = after
    return [c for c in after if c["name"] not in names]


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


def _status(code: int, message: str, reason: str = "") -> dict[str, Any]:
    reasons = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        422: "Invalid",
        500: "InternalError",
    }
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or reasons.get(code, "Unknown"),
        "code": code,
    }


#: Legacy discovery documents, enough for `kubectl get/logs/debug` (kubectl maps `pod` to a resource with them).
DISCOVERY: dict[str, dict[str, Any]] = {
    "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "namespaces",
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["get", "list"],
                "shortNames": ["ns"],
            },
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "list"],
                "shortNames": ["po"],
                "categories": ["all"],
            },
            {
                "name": "pods/ephemeralcontainers",
                "singularName": "",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "patch", "update"],
            },
            {
                "name": "pods/exec",
                "singularName": "",
                "namespaced": True,
                "kind": "PodExecOptions",
                "verbs": ["create", "get"],
            },
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {"name": "pods/proxy", "singularName": "", "namespaced": True, "kind": "PodProxyOptions", "verbs": ["get"]},
        ],
    },
}

POD_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/:]+)(?::(?P<port>\d+))?(?:/(?P<rest>.*))?$")


class FakeApiServer:
    """The server (see the module doc).  Use as a context manager or call start()/stop()."""

    def __init__(self, scenario: Scenario | None = None, token: str = TOKEN, tls: bool = False) -> None:
        self.scenario = scenario or Scenario.istio()
        self.token = token
        self.ca_pem = ""
        self.requests: list[RecordedRequest] = []
        self.captures: dict[str, CaptureRun] = {}
        self._lock = threading.RLock()
        self._workdir = Path(tempfile.mkdtemp(prefix="meshviz-fake-apiserver-"))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        if tls:  # kubectl sends no bearer token over plain HTTP: serve HTTPS with a fresh self-signed certificate
            cert, key = self_signed_certificate("127.0.0.1")
            (self._workdir / "tls.crt").write_text(cert)
            (self._workdir / "tls.key").write_text(key)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self._workdir / "tls.crt", self._workdir / "tls.key")
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
            self.ca_pem = cert
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-apiserver", daemon=True)

    # -- lifecycle
    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.ca_pem else 'http'}://{host!s}:{port}"

    @property
    def kubeconfig(self) -> str:
        return kubeconfig_text(self.url, self.token, self.ca_pem)

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    def writes(self) -> list[RecordedRequest]:
        """Requests that change something (anything but GET and access reviews; exec is a GET/POST upgrade)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method not in ("GET", "HEAD")
                and not r.websocket
                and not r.path.endswith("/selfsubjectaccessreviews")
            ]

    # -- behaviour
    def allowed(self, verb: str, resource: str, subresource: str = "") -> bool:
        return (verb, resource, subresource) not in self.scenario.forbidden

    def injected_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for f in self.scenario.failures:
                if f.times > 0 and f.method == method and f.path.search(path):
                    f.times -= 1
                    return f.status
        return None

    def pod_json(self, ns: str, name: str) -> dict[str, Any] | None:
        """The pod as the API server shows it now, advancing capture containers' states."""
        with self._lock:
            if (ns, name) in self.scenario.gone or (ns, name) not in self.scenario.pods:
                return None
            pod = copy.deepcopy(self.scenario.pods[(ns, name)])
            statuses = []
            for c in pod.get("spec", {}).get("ephemeralContainers") or []:
                run = self.captures.get(c["name"])
                state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
                if run is not None:
                    run.reads += 1
                    if run.reads >= 2 or self.scenario.never_terminate:
                        state = {"running": {"startedAt": "2026-11-22T06:12:40Z"}}
                    tools = self.scenario.tools_for(str(c.get("image") or ""))
                    if tools is None and run.reads >= 2:  # no shell in the image: the runtime cannot start it
                        run.log, run.exit_code = "", 128
                        state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": START_ERROR}}
                    elif not self.scenario.never_terminate and run.reads > self.scenario.terminate_after:
                        if run.exit_code is None:
                            data = self.scenario.data.get((ns, name))
                            if data is None:
                                run.log, run.exit_code = "no data for this pod in the fake\n", 1
                            else:
                                run.log, run.exit_code = run_capture_command(
                                    c.get("command", []) + c.get("args", []),
                                    data,
                                    self._workdir / c["name"],
                                    tools or frozenset(),
                                )
                        state = {
                            "terminated": {
                                "exitCode": run.exit_code,
                                "reason": "Completed" if run.exit_code == 0 else "Error",
                            }
                        }
                statuses.append(
                    {"name": c["name"], "state": state, "ready": False, "restartCount": 0, "image": c.get("image")}
                )
            if statuses:
                pod["status"]["ephemeralContainerStatuses"] = statuses
            return pod


def self_signed_certificate(ip: str) -> tuple[str, str]:
    """A throwaway self-signed server certificate for `ip` (PEM certificate, PEM key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def kubeconfig_text(url: str, token: str, ca_pem: str = "") -> str:
    ca = f"    certificate-authority-data: {base64.b64encode(ca_pem.encode()).decode()}\n" if ca_pem else ""
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: fake\n"
        "  cluster:\n"
        f"    server: {url}\n"
        f"{ca}"
        "contexts:\n"
        "- name: fake\n"
        "  context:\n"
        "    cluster: fake\n"
        "    user: meshviz\n"
        "    namespace: hr2\n"
        "- name: other\n"
        "  context:\n"
        "    cluster: fake\n"
        "    user: meshviz\n"
        "current-context: fake\n"
        "users:\n"
        "- name: meshviz\n"
        "  user:\n"
        f"    token: {token}\n"
    )


def _handler_for(fake: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_fake = fake

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeApiServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing
    def _send(self, code: int, payload: Any, content_type: str = "application/json") -> None:
        data = (
            payload
            if isinstance(payload, bytes)
            else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        )
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self._record is not None:
            self._record.status = code

    def _error(self, code: int, message: str, reason: str = "") -> None:
        self._send(code, _status(code, message, reason))

    def _handle(self, method: str) -> None:
        fake = self.server_fake
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        websocket = self.headers.get("Upgrade", "").lower() == "websocket"
        self._record: RecordedRequest | None = RecordedRequest(method, path, query, content_type, body, websocket)
        with fake._lock:
            fake.requests.append(self._record)
        if self.headers.get("Authorization") != f"Bearer {fake.token}":
            self._error(401, "Unauthorized")
            return
        injected = fake.injected_failure(method, path)
        if injected is not None:
            self._error(injected, f"injected failure {injected} (etcdserver: request timed out)")
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(method, path, query, content_type, body, websocket)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- routes
    def _route(self, method: str, path: str, query: dict[str, list[str]], ctype: str, body: Any, ws: bool) -> None:
        fake = self.server_fake
        sc = fake.scenario
        if method == "GET" and path in DISCOVERY:
            self._send(200, DISCOVERY[path])
            return
        if method == "POST" and path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            attrs = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
            allowed = fake.allowed(attrs.get("verb", ""), attrs.get("resource", ""), attrs.get("subresource", ""))
            answer = dict(body or {})
            answer["status"] = {"allowed": allowed} | ({} if allowed else {"reason": "no RBAC rule"})
            self._send(201, answer)
            return
        if method == "GET" and path == "/api/v1/namespaces":
            if not fake.allowed("list", "namespaces"):
                self._error(
                    403,
                    'namespaces is forbidden: User "system:serviceaccount:meshviz:meshviz" cannot list resource "namespaces" in API group "" at the cluster scope',
                )
                return
            items = [{"metadata": {"name": n}, "status": {"phase": "Active"}} for n in sc.namespaces]
            self._send(200, {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": items})
            return
        m = re.match(r"^/api/v1/namespaces/([^/]+)/pods$", path)
        if m and method == "GET":
            ns = m.group(1)
            if not fake.allowed("list", "pods"):
                self._error(403, f'pods is forbidden: cannot list resource "pods" in namespace "{ns}"')
                return
            items = [p for (pns, name) in sorted(sc.pods) if pns == ns and (p := fake.pod_json(pns, name))]
            self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
            return
        m = POD_PATH.match(path)
        if not m:
            self._error(404, f"the server could not find the requested resource ({method} {path})")
            return
        ns, name, port, rest = m.group("ns"), m.group("name"), m.group("port"), m.group("rest") or ""
        if port is not None:
            self._proxy(ns, name, int(port), rest)
            return
        if rest == "exec":
            self._exec(ns, name, query, ws)
            return
        if rest == "" and method == "GET":
            if not fake.allowed("get", "pods"):
                self._error(403, f'pods "{name}" is forbidden: cannot get resource "pods" in namespace "{ns}"')
                return
            pod = fake.pod_json(ns, name)
            if pod is None:
                self._error(404, f'pods "{name}" not found')
            else:
                self._send(200, pod)
            return
        if rest == "ephemeralcontainers" and method == "PATCH":
            self._patch_ephemeral(ns, name, ctype, body)
            return
        if rest == "log" and method == "GET":
            self._log(ns, name, query)
            return
        self._error(405, f"{method} {path} is not served by the fake API server")

    def _patch_ephemeral(self, ns: str, name: str, ctype: str, body: Any) -> None:
        fake = self.server_fake
        if not fake.allowed("patch", "pods", "ephemeralcontainers"):
            self._error(
                403,
                f'pods "{name}" is forbidden: User "system:serviceaccount:meshviz:meshviz" cannot patch resource "pods/ephemeralcontainers" in API group "" in the namespace "{ns}"',
            )
            return
        if fake.pod_json(ns, name) is None:
            self._error(404, f'pods "{name}" not found')
            return
        if fake.scenario.reject_ephemeral is not None:
            code, message = fake.scenario.reject_ephemeral
            self._error(code, message)
            return
        with fake._lock:
            pod = fake.scenario.pods[(ns, name)]
            if fake.scenario.pod_security is not None:
                # admission sees the pod as it would be after the patch (every container, old and new)
                after = copy.deepcopy(pod)
                try:
                    apply_ephemeral_patch(after, ctype, body)
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    self._error(422, f'Pod "{name}" is invalid: {e}')
                    return
                refusal = pod_security_message(name, after["spec"], fake.scenario.pod_security)
                if refusal is not None:
                    code = fake.scenario.pod_security_status
                    self._error(code, refusal, "Forbidden" if code == 403 else "Invalid")
                    return
            try:
                added = apply_ephemeral_patch(pod, ctype, body)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                self._error(422, f'Pod "{name}" is invalid: {e}')
                return
            for c in added:
                fake.captures[c["name"]] = CaptureRun(ns, name, copy.deepcopy(c))
        self._send(200, fake.pod_json(ns, name))

    def _log(self, ns: str, name: str, query: dict[str, list[str]]) -> None:
        fake = self.server_fake
        if not fake.allowed("get", "pods", "log"):
            self._error(403, f'pods "{name}" is forbidden: cannot get resource "pods/log" in namespace "{ns}"')
            return
        if fake.pod_json(ns, name) is None:
            self._error(404, f'pods "{name}" not found')
            return
        container = (query.get("container") or [""])[0]
        run = fake.captures.get(container)
        if run is None or run.namespace != ns or run.pod != name:
            self._error(400, f"container {container} is not valid for pod {name}")
            return
        if run.exit_code is None:
            self._send(200, b"", "text/plain")
            return
        self._send(200, run.log.encode(), "text/plain")

    def _proxy(self, ns: str, name: str, port: int, rest: str) -> None:
        fake = self.server_fake
        if not fake.allowed("get", "pods", "proxy"):
            self._error(403, f'pods "{name}:{port}" is forbidden: cannot get resource "pods/proxy" in namespace "{ns}"')
            return
        if fake.pod_json(ns, name) is None:
            self._error(404, f'pods "{name}" not found')
            return
        data = fake.scenario.data.get((ns, name))
        if port != 15000 or rest != "proxy/config_dump" or data is None:
            self._error(503, f"error trying to reach service: dial tcp {POD_IP}:{port}: connect: connection refused")
            return
        if fake.scenario.admin_port_status != 200:
            code = fake.scenario.admin_port_status
            self._error(code, f"error trying to reach service: dial tcp {POD_IP}:{port}: connect: connection refused")
            return
        self._send(200, data.config_dump.encode(), "application/json")

    # -- exec over a websocket
    def _exec(self, ns: str, name: str, query: dict[str, list[str]], ws: bool) -> None:
        fake = self.server_fake
        if not fake.allowed("create", "pods", "exec"):
            self._error(
                403,
                f'pods "{name}" is forbidden: User "system:serviceaccount:meshviz:meshviz" cannot create resource "pods/exec" in API group "" in the namespace "{ns}"',
            )
            return
        pod = fake.pod_json(ns, name)
        if pod is None:
            self._error(404, f'pods "{name}" not found')
            return
        if fake.scenario.exec_http_error is not None:
            code, message = fake.scenario.exec_http_error
            self._error(code, message)
            return
        if not ws:
            self._error(400, "Upgrade request required")
            return
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        # v5 (kubectl >= 1.30, websockets) is v4 plus a stdin-close signal this fake never needs
        protocol = next((p for p in ("v5.channel.k8s.io", "v4.channel.k8s.io") if p in offered), None)
        if protocol is None:
            self._error(400, "unable to upgrade connection: no supported subprotocol")
            return
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        if self._record is not None:
            self._record.status = 101
        self.close_connection = True
        command = query.get("command", [])
        container = (query.get("container") or [""])[0]
        data = fake.scenario.data.get((ns, name))
        status: dict[str, Any]
        if fake.scenario.exec_exit is not None:
            code, message = fake.scenario.exec_exit
            self._ws_send(2, f"{message}\n".encode())
            status = _exit_status(code, message)
        elif container == "istio-proxy" and command == ["pilot-agent", "request", "GET", "config_dump"] and data:
            payload = data.config_dump.encode()
            for chunk in _chunks(payload, 32 * 1024):
                self._ws_send(1, chunk)
            status = {"metadata": {}, "status": "Success"}
        else:
            message = f'exec: "{command[0] if command else ""}": executable file not found in $PATH: unknown'
            status = _exit_status(
                127, f"OCI runtime exec failed: exec failed: unable to start container process: {message}"
            )
        self._ws_send(3, json.dumps(status).encode())
        self._ws_frame(0x8, struct.pack("!H", 1000))
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)

    def _ws_send(self, channel: int, payload: bytes) -> None:
        self._ws_frame(0x2, bytes([channel]) + payload)

    def _ws_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([n])
        elif n < 65536:
            header += bytes([126]) + struct.pack("!H", n)
        else:
            header += bytes([127]) + struct.pack("!Q", n)
        self.wfile.write(header + payload)
        self.wfile.flush()


def _exit_status(code: int, message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def os_has_sh() -> bool:
    return os.path.exists("/bin/sh")
