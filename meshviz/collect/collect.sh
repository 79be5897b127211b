#!/bin/sh
# meshviz collect.sh: one Istio sidecar pod's evidence, gathered with your own kubectl (nothing else needed),
# written to ./meshviz-<namespace>-<pod>.tar.gz for meshviz (docs/collecting-evidence.md).
#   sh collect.sh [-n NAMESPACE] [--image IMAGE] [--timeout SECONDS] POD        (KUBECTL=path overrides kubectl)
# Runs: `kubectl get pod`; `kubectl exec -c istio-proxy -- pilot-agent request GET config_dump`; one
# `kubectl debug` ephemeral container (the pod's proxy image, root with NET_ADMIN+NET_RAW, read-only commands).
# The dump's secrets are redacted before it is written; nothing of the dump is printed.
set -u
K=${KUBECTL:-kubectl}; ns=""; pod=""; image=""; timeout=120; FORMAT=1
die() { echo "collect.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) [ $# -ge 2 ] || die "$1 needs a value"; ns=$2; shift 2;;
    --image) [ $# -ge 2 ] || die "$1 needs a value"; image=$2; shift 2;;
    --timeout) [ $# -ge 2 ] || die "$1 needs a value"; timeout=$2; shift 2;;
    -h|--help) sed -n '2,7p' "$0"; exit 0;;
    -*) die "unknown option $1";;
    *) [ -z "$pod" ] || die "one pod at a time"; pod=$1; shift;;
  esac
done
[ -n "$pod" ] || die "usage: sh collect.sh [-n NAMESPACE] POD"
[ -n "$ns" ] || ns=$("$K" config view --minify -o 'jsonpath={..namespace}' 2>/dev/null); [ -n "$ns" ] || ns=default
name=meshviz-$ns-$pod; tmp=$(mktemp -d) || die "mktemp failed"; out=$tmp/$name; mkdir "$out"
trap 'rm -rf "$tmp"' EXIT
say() { echo "collect.sh: $*" >&2; }
js() { printf '%s' "$1" | tr '\n\r\t' '   ' | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g'; }
ok=""; bad=""
got() { ok="$ok{\"file\": \"$1\", \"how\": \"$(js "$2")\"},"; }
failed() { bad="$bad{\"what\": \"$1\", \"how\": \"$(js "$2")\", \"why\": \"$(js "$3")\"},"; say "$1: $3"; }
"$K" get pod -n "$ns" "$pod" -o json >"$out/pod.json" 2>"$tmp/err" || die "cannot read pod $ns/$pod: $(cat "$tmp/err")"
got pod.json "kubectl get pod -o json"
jp() { "$K" get pod -n "$ns" "$pod" -o "jsonpath=$1" 2>/dev/null; }
proxy=$(jp '{.spec.containers[?(@.name=="istio-proxy")].image}{.spec.initContainers[?(@.name=="istio-proxy")].image}')
[ -n "$proxy" ] || die "pod $ns/$pod has no istio-proxy container"
image_why="the pod's own istio-proxy image"
case "$image:$proxy" in
  :*distroless*) image=docker.io/nicolaka/netshoot:v0.13; image_why="istio-proxy is distroless (no shell): netshoot";;
  :*) image=$proxy;; *) image_why="--image";;
esac
# Envoy's secrets (keys, certificates, tokens) are replaced before the dump is written.
redact() {
  sed -E -e 's/("(private_key|inline_bytes|inline_string|password|token|jwt|bearer_token|client_secret|secret|api_key|authorization|session_ticket_keys)"[[:space:]]*:[[:space:]]*)"([^"\\]|\\.)*"/\1"[redacted by collect.sh]"/g' \
    -e 's/-----BEGIN [A-Z ]*PRIVATE KEY-----[^"]*/[redacted by collect.sh]/g'
}
dump_in_capture=false; dump_why=""
if "$K" exec -n "$ns" "$pod" -c istio-proxy -- pilot-agent request GET config_dump 2>"$tmp/err" | redact >"$tmp/dump" \
    && grep -q '"configs"' "$tmp/dump"; then
  mv "$tmp/dump" "$out/config_dump.json"; got config_dump.json "kubectl exec -c istio-proxy -- pilot-agent request GET config_dump"
else
  dump_in_capture=true; dump_why="(1) kubectl exec: $(head -c 300 "$tmp/err")"
fi
# The capture container's script: every part between marker lines, its exit status after it.
script='part() { printf "\n### meshviz:%s\n" "$1"; }
run() { p=$1; shift; part "$p"; if command -v "$1" >/dev/null 2>&1; then "$@"; r=$?; else echo "$1: not in the image" >&2; r=127; fi; printf "\n### meshviz:rc %s %s\n" "$p" "$r"; }
sysctls() { if command -v sysctl >/dev/null 2>&1; then sysctl -a 2>/dev/null | grep -E "^net\.ipv[46]\.(ip_forward|tcp_fwmark_accept|ip_nonlocal_bind|ip_local_port_range|conf\.[^ ]+\.(route_localnet|rp_filter|src_valid_mark|accept_local|forwarding)) ="; else
  cd /proc/sys && for f in net/ipv4/ip_forward net/ipv4/tcp_fwmark_accept net/ipv4/ip_nonlocal_bind net/ipv4/ip_local_port_range net/ipv4/conf/*/route_localnet net/ipv4/conf/*/rp_filter net/ipv4/conf/*/src_valid_mark net/ipv4/conf/*/accept_local net/ipv4/conf/*/forwarding net/ipv6/conf/*/forwarding; do [ -r "$f" ] && printf "%s = %s\n" "$(echo "$f" | tr / .)" "$(cat "$f")"; done; true; fi; }'
if $dump_in_capture; then
  script="$script
dump() { for t in pilot-agent curl wget; do command -v \$t >/dev/null 2>&1 || continue; case \$t in
  pilot-agent) pilot-agent request GET config_dump;; curl) curl -sS --fail --max-time 30 http://127.0.0.1:15000/config_dump;;
  wget) wget -q -T 30 -O - http://127.0.0.1:15000/config_dump;; esac; return; done; echo 'no pilot-agent, curl or wget' >&2; return 127; }
part config_dump; dump 2>/dev/null; printf '\n### meshviz:rc config_dump %s\n' \$?"
fi
script="$script
for b in iptables-legacy-save iptables-nft-save ip6tables-legacy-save ip6tables-nft-save; do run \$b \$b; done
run nft-ruleset nft list ruleset; run ip-rule ip rule show; run ip6-rule ip -6 rule show
run ip-route ip route show table all; run ip6-route ip -6 route show table all; run ip-addr ip -o addr
part sysctl; sysctls; printf '\n### meshviz:rc sysctl %s\n' \$?; part end"
cname=meshviz-capture-$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')
printf '{"securityContext": {"runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}}}\n' >"$tmp/custom.json"
capture=captured; how="kubectl debug -c $cname --image=$image --target=istio-proxy --profile=netadmin (root, NET_ADMIN+NET_RAW)"
if ! "$K" debug -n "$ns" "$pod" -c "$cname" --image="$image" --image-pull-policy=IfNotPresent --target=istio-proxy \
    --profile=netadmin --custom="$tmp/custom.json" --quiet -- sh -c "$script" >/dev/null 2>"$tmp/err"; then
  msg=$(head -c 600 "$tmp/err")
  case "$msg" in
    *"unknown flag"*) capture=failed; failed netfilter "$how" "this kubectl lacks kubectl debug --custom (1.31+): $msg";;
    *) capture=refused; failed netfilter "$how" "the capture container was refused: $msg";;
  esac
  say "meshviz will reconstruct the rules from the pod spec (marked \"reconstructed, not captured\")"
else
  say "capture container $cname started ($image); waiting for it (at most ${timeout}s)"
  waited=0; code=""
  while [ "$waited" -lt "$timeout" ]; do
    code=$(jp "{.status.ephemeralContainerStatuses[?(@.name==\"$cname\")].state.terminated.exitCode}")
    [ -n "$code" ] && break; sleep 1; waited=$((waited + 1))
  done
  if [ -z "$code" ]; then capture=failed; failed netfilter "$how" "did not terminate within ${timeout}s"
  elif ! "$K" logs -n "$ns" "$pod" -c "$cname" >"$tmp/log" 2>"$tmp/err"; then
    capture=failed; failed netfilter "kubectl logs -c $cname" "$(head -c 300 "$tmp/err")"
  else
    awk -v d="$tmp/part-" '/^### meshviz:rc /{print $4 > (d $3 ".rc"); next} /^### meshviz:/{p=substr($0,13); next} p!=""&&p!="end"{print > (d p)}' "$tmp/log"
    for p in iptables-legacy-save iptables-nft-save ip6tables-legacy-save ip6tables-nft-save nft-ruleset ip-rule ip6-rule \
        ip-route ip6-route ip-addr sysctl; do
      rc=$(cat "$tmp/part-$p.rc" 2>/dev/null || echo missing)
      if [ "$rc" = 0 ]; then mv "$tmp/part-$p" "$out/$p.txt"; got "$p.txt" "capture container $cname: $p"; continue; fi
      why="exit status $rc"; [ "$rc" = 127 ] && why="$why: not in the capture image $image"
      failed "$p.txt" "capture container $cname: $p" "$why $(grep -v '^$' "$tmp/part-$p" 2>/dev/null | tail -n 2)"
    done
    if $dump_in_capture; then
      if [ "$(cat "$tmp/part-config_dump.rc" 2>/dev/null)" = 0 ] && redact <"$tmp/part-config_dump" >"$tmp/dump" \
          && grep -q '"configs"' "$tmp/dump"; then
        mv "$tmp/dump" "$out/config_dump.json"; dump_in_capture=false
        got config_dump.json "the capture container: pilot-agent/curl/wget of 127.0.0.1:15000/config_dump (after: $dump_why)"
      else dump_why="$dump_why; (2) the capture container: no dump"; fi
    fi
  fi
fi
if $dump_in_capture; then
  if "$K" get --raw "/api/v1/namespaces/$ns/pods/$pod:15000/proxy/config_dump" 2>"$tmp/err" | redact >"$tmp/dump" \
      && grep -q '"configs"' "$tmp/dump"; then
    mv "$tmp/dump" "$out/config_dump.json"; got config_dump.json "kubectl get --raw .../pods/$pod:15000/proxy/config_dump"
  else failed config_dump.json "exec, the capture container, the admin port proxy" "$dump_why; (3) admin port: $(head -c 200 "$tmp/err")"; fi
fi
kv=$("$K" version --client -o json 2>/dev/null | grep gitVersion | head -n 1 | sed 's/.*: *"//; s/".*//')
{ printf '{\n  "format": "meshviz-bundle",\n  "format_version": %s,\n  "tool": "collect.sh",\n' "$FORMAT"
  printf '  "created": "%s",\n  "kubectl": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(js "$kv")"
  printf '  "namespace": "%s",\n  "pod": "%s",\n' "$(js "$ns")" "$(js "$pod")"
  printf '  "capture": {"status": "%s", "container": "%s", "image": "%s", "image_reason": "%s", "how": "%s"},\n' \
    "$capture" "$cname" "$(js "$image")" "$(js "$image_why")" "$(js "$how")"
  printf '  "secrets": "redacted from config_dump.json before it was written",\n'
  printf '  "collected": [%s],\n  "failed": [%s]\n}\n' "${ok%,}" "${bad%,}"
} >"$out/manifest.json"
tar -czf "$name.tar.gz" -C "$tmp" "$name" || die "cannot write $name.tar.gz"
echo "wrote $name.tar.gz (capture: $capture); upload it to meshviz's new-analysis page or POST it as \"bundle\""
