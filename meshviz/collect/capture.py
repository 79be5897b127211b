"""The capture container: the POSIX sh script it runs in the pod's network namespace (iptables, nft, ip rule/route/addr,
sysctls, optionally the config dump), the ephemeral container around it, and the image it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from meshviz.collect.discover import (
    PROXY_CONTAINER,
    proxy_container,
)

#: The capture image used when the pod's own istio-proxy image cannot run the capture: Istio's distroless
#: proxy variant has no shell (or the pod spec names no image).  netshoot (Alpine; iptables legacy+nft,
#: iproute2, procps, curl; ~200 MB, widely mirrored).  By default the capture runs the pod's own istio-proxy
#: image instead (see `capture_image`); `collect_pod(debug_image=...)` overrides both.
DEFAULT_DEBUG_IMAGE: Final = "docker.io/nicolaka/netshoot:v0.13"
CONFIG_DUMP_COMMAND: Final = ("pilot-agent", "request", "GET", "config_dump")
ADMIN_PORT: Final = 15000
#: Envoy's admin listener as seen from inside the pod's network namespace (Istio binds it to localhost).
ADMIN_URL: Final = f"http://127.0.0.1:{ADMIN_PORT}/config_dump"
ADMIN_URL6: Final = f"http://[::1]:{ADMIN_PORT}/config_dump"
MARKER: Final = "### meshviz:"
CAPTURE_PREFIX: Final = "meshviz-capture-"

#: Sysctls the engine models (sysctl -a lines matching this are kept).
_SYSCTL_PATTERN: Final = (
    r"^net\.ipv4\.(ip_forward|tcp_fwmark_accept|ip_nonlocal_bind|ip_local_port_range"
    r"|conf\.[^ ]+\.(route_localnet|rp_filter|src_valid_mark|accept_local|forwarding)) ="
    r"|^net\.ipv6\.(ip_nonlocal_bind|conf\.[^ ]+\.forwarding) ="
)
_SYSCTL_FILES: Final = (
    "net/ipv4/ip_forward net/ipv4/tcp_fwmark_accept net/ipv4/ip_nonlocal_bind net/ipv4/ip_local_port_range "
    "net/ipv4/conf/*/route_localnet net/ipv4/conf/*/rp_filter net/ipv4/conf/*/src_valid_mark "
    "net/ipv4/conf/*/accept_local net/ipv4/conf/*/forwarding"
)


def capture_script(ipv6: bool = False, config_dump: bool = False) -> str:
    """The shell script the capture container runs: read-only commands, each output between marker lines.

    `### meshviz:<part>` starts a part, `### meshviz:rc <part> <exit status>` ends it, `### meshviz:end`
    ends the capture.  iptables-save is taken from whichever backend (legacy or nft) holds rules, the way
    istio-iptables itself chooses; sysctls come from `sysctl -a` filtered to the keys the engine models,
    or from /proc/sys when the image has no sysctl (Istio's proxyv2 has no procps).

    With `config_dump`, the script first reads Envoy's config dump from the admin listener on
    127.0.0.1:15000 (reachable: the container shares the pod's network namespace) with
    `pilot-agent request GET config_dump` (proxyv2), else curl, else wget; its stdout is the `config_dump`
    part, the tool used is the `config_dump-tool` part and its stderr the `config_dump-stderr` part.  It
    comes first so that, should the kubelet rotate a very large log, the netfilter parts at the end survive.
    """
    families = [("iptables-save", "iptables")] + ([("ip6tables-save", "ip6tables")] if ipv6 else [])
    lines = [
        "set -u",
        "part() { printf '\\n" + MARKER + '%s\\n\' "$1"; }',
        "rc() { printf '\\n" + MARKER + 'rc %s %s\\n\' "$1" "$2"; }',
        "save() {",
        '  for b in "$1-legacy-save" "$1-nft-save"; do',
        '    if command -v "$b" >/dev/null 2>&1; then',
        '      out=$("$b" 2>/dev/null) || continue',
        '      case "$out" in *"-A "*) printf \'%s\\n\' "$out"; return 0;; esac',
        "    fi",
        "  done",
        '  "$1-save"',
        "}",
        "sysctls() {",
        "  if command -v sysctl >/dev/null 2>&1; then",
        f"    sysctl -a 2>/dev/null | grep -E '{_SYSCTL_PATTERN}'",
        "  else",
        f"    cd /proc/sys && for f in {_SYSCTL_FILES}; do",
        '      [ -r "$f" ] && printf \'%s = %s\\n\' "$(echo "$f" | tr / .)" "$(cat "$f")"',
        "    done; true",
        "  fi",
        "}",
    ]
    if config_dump:
        curl = f"curl -sS --fail --max-time 30 {ADMIN_URL}"
        wget = f"wget -q -T 30 -O - {ADMIN_URL}"
        if ipv6:  # an IPv6-only pod's Envoy listens on ::1
            curl += f" || curl -sS -g --fail --max-time 30 '{ADMIN_URL6}'"
            wget += f" || wget -q -T 30 -O - '{ADMIN_URL6}'"
        lines += [
            "dump_tool=none",
            "for t in pilot-agent curl wget; do",
            '  if command -v "$t" >/dev/null 2>&1; then dump_tool=$t; break; fi',
            "done",
            "dump() {",
            '  case "$dump_tool" in',
            f"    pilot-agent) {' '.join(CONFIG_DUMP_COMMAND)};;",
            f"    curl) {curl};;",
            f"    wget) {wget};;",
            '    *) echo "no pilot-agent, curl or wget in the capture image to read Envoy\'s admin port" >&2;'
            " return 127;;",
            "  esac",
            "}",
            'part config_dump-tool; echo "$dump_tool"',
            # stdout straight into the log, stderr kept apart (a container log mixes the two)
            "part config_dump; { err=$(dump 2>&1 >&3); } 3>&1; rc config_dump $?",
            "part config_dump-stderr; printf '%s\\n' \"$err\"",
        ]
    for part, binary in families:
        lines.append(f"part {part}; save {binary}; rc {part} $?")
    lines += [
        # native nftables (Istio's nft backend, kube-proxy's nftables mode): only where the image has nft
        "if command -v nft >/dev/null 2>&1; then part nft-ruleset; nft list ruleset; rc nft-ruleset $?; fi",
        "part ip-rule; ip rule show; rc ip-rule $?",
        "part ip-route; ip route show table all; rc ip-route $?",
        "part sysctl; sysctls; rc sysctl $?",
        "part end",
    ]
    return "\n".join(lines) + "\n"


CAPTURE_SCRIPT: Final = capture_script(False)


def capture_container(name: str, image: str, ipv6: bool = False, config_dump: bool = False) -> dict[str, Any]:
    """The ephemeral container spec meshviz adds (as sent in the strategic merge patch).

    It runs as root (uid 0, runAsNonRoot false: Istio's proxyv2 image would otherwise run as 1337) with
    NET_ADMIN and NET_RAW, which reading the netfilter tables needs; Pod Security "baseline" and
    "restricted" refuse exactly that, and meshviz then reconstructs instead.
    """
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", capture_script(ipv6, config_dump)],
        "targetContainerName": PROXY_CONTAINER,
        "stdin": False,
        "tty": False,
        "terminationMessagePolicy": "File",
        "securityContext": {
            # iptables-save needs NET_ADMIN (and NET_RAW for the legacy backend's raw socket) as root;
            # nothing is written: every command only reads.
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
    }


def _is_distroless(image: str) -> bool:
    """Istio's distroless variant (`proxyv2:1.18.2-distroless`): no shell, so it cannot run the script."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "distroless" in tag


def capture_image(pod: Mapping[str, Any], debug_image: str | None = None) -> tuple[str, str]:
    """The capture container's image and why it was chosen.

    `debug_image` when given; otherwise the pod's own istio-proxy image (Istio's proxyv2 carries
    iptables-save (legacy and nft), ip and pilot-agent - istio-init runs from it - and is already on the
    node); `DEFAULT_DEBUG_IMAGE` when that image is the distroless variant or the spec names none.
    """
    if debug_image:
        return debug_image, "the debug_image override"
    proxy = proxy_container(pod) or {}
    image = str(proxy.get("image") or "").strip()
    if not image:
        return DEFAULT_DEBUG_IMAGE, f"the pod spec names no {PROXY_CONTAINER} image"
    if _is_distroless(image):
        return (
            DEFAULT_DEBUG_IMAGE,
            f"the pod's {PROXY_CONTAINER} image {image} is Istio's distroless variant, which has no shell; "
            "pass debug_image to choose another",
        )
    return image, f"the pod's own {PROXY_CONTAINER} image, already on the node"
