"""Benchmarks of issue 15 (performance, engine half), each against its baseline measured in the same run.

    python bench/run.py [--repeat 3] [--only iptables,growth,envoy,story,nft,trace] [--services 10000] [--scale 600]

Every time is the median of --repeat runs (at least 3), every process figure is a whole process started afresh
(interpreter start-up and imports included), and memory is the process's peak RSS (`wait4`'s ru_maxrss):

* iptables: `python -m meshviz.engine parse F --format summary` on the 10,000-service kube-proxy ruleset
  (`../shared/bench/gen_kube_proxy_rules.py`) against `iptables-legacy-restore --test F` in a throwaway network
  namespace.  Targets: ratio <= 1.00, peak RSS <= 3x the file.
* growth: in-process `parse_iptables` at 1k, 10k and 40k services; the exponent of time ~ services^k (1.00 is
  linear).
* envoy: `python -m meshviz.engine parse F --kind envoy --format summary` on the 42 MB Istio dump
  (`../shared/bench/gen_envoy_dump.py --scale 600`) against a process doing `json.load(F)`.  Targets: ratio <= 1.00,
  peak RSS <= 3x the file.  The dump carries planted secrets; the parsed config must report each redacted.
* story: a node-sized pod (a bundled Istio TPROXY example whose rules get the 10k-service ruleset added) told twice
  in one process: the first story parses and indexes, the second must reuse the parse-once cache.
* nft: `python -m meshviz.engine parse F --kind nftables --format summary` on what `nft list ruleset` prints for
  kube-proxy's nftables ruleset of the same cluster (`../shared/bench/gen_kube_proxy_nft.py`, loaded with `nft -f`
  into a throwaway namespace, the listing cached under the temporary directory) against `iptables-legacy-restore
  --test` on the cluster's iptables ruleset; the listing parser against the general one in-process; one trace to
  a service through it.  Target: ratio <= 1.00.
* trace: one packet traced through the 10k-service ruleset (target <= 10 ms per trace).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import ipaddress
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED_BENCH = ROOT.parent / "shared" / "bench"
PY = sys.executable
MB = 1024 * 1024


def load_module(name: str) -> Any:
    path = SHARED_BENCH / f"{name}.py"
    if not path.exists():
        raise SystemExit(f"{path} not found")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# A child's ru_maxrss starts at its parent's RSS (fork, then exec keeps the high-water mark), and this process holds
# big generated inputs: a small launcher starts each measured process and reports its wall time and peak RSS.
LAUNCHER = """
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - t0, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))
"""


def run_process(argv: Sequence[str], stdin_path: str | None = None) -> tuple[float, int, int]:
    """Wall time, peak RSS in bytes and exit status of one process (its output discarded)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(stdin_path or os.devnull, "rb") as stdin, tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            [PY, "-c", LAUNCHER, *argv], stdin=stdin, stdout=out, stderr=subprocess.PIPE, env=env, check=False
        )
        out.seek(0)
        last = out.read().decode(errors="replace").strip().splitlines()[-1]
    elapsed, rss, status = last.split()
    if int(status) != 0:
        print(f"  ! {' '.join(argv[:6])} exited {status}: {proc.stderr.decode()[:300]}")
    return float(elapsed), int(rss), int(status)


def median_process(argv: Sequence[str], repeat: int, stdin_path: str | None = None) -> tuple[float, int]:
    times, rss = [], []
    for _ in range(repeat):
        t, m, _ = run_process(argv, stdin_path)
        times.append(t)
        rss.append(m)
    return statistics.median(times), max(rss)


def median_call(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(repeat):
        result = None  # free the previous run's result outside the timed region
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def ms(s: float) -> str:
    return f"{s * 1000:8.1f} ms"


def mib(b: int) -> str:
    return f"{b / MB:6.1f} MiB"


def write_temp(text: str, suffix: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False) as f:
        f.write(text)
        return f.name


# ---------------------------------------------------------------------------


class Namespace:
    """A throwaway network namespace for iptables-restore --test (None outside root)."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.why = ""

    def __enter__(self) -> Namespace:
        if os.geteuid() != 0:
            self.why = "needs root for a network namespace"
        elif subprocess.run(["which", "iptables-legacy-restore"], capture_output=True).returncode != 0:
            self.why = "iptables-legacy-restore not installed (make sysdeps)"
        else:
            name = f"mvzbench{os.getpid()}"
            if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0:
                self.name = name
            else:
                self.why = "cannot create a network namespace"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.name:
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)


def bench_iptables(args: argparse.Namespace, ns: Namespace) -> None:
    gen = load_module("gen_kube_proxy_rules").generate
    text = gen(args.services, 3, 7)
    path = write_temp(text, ".rules")
    size = os.path.getsize(path)
    try:
        print(f"== iptables: kube-proxy ruleset, {args.services} services, {text.count(chr(10))} lines, {mib(size)}")
        cli = [PY, "-m", "meshviz.engine", "parse", path, "--format", "summary"]
        start = [PY, "-c", "import meshviz.engine.cli"]
        run_process(cli)  # warm the page cache and .pyc files
        restore: float | None = None
        restore_rss = 0
        cli_s, cli_rss = median_process(cli, args.repeat)
        if ns.name:
            restore, restore_rss = median_process(
                ["ip", "netns", "exec", ns.name, "iptables-legacy-restore", "--test"], args.repeat, stdin_path=path
            )
        start_s, start_rss = median_process(start, args.repeat)
        print(f"meshviz CLI parse --format summary:   {ms(cli_s)}  peak RSS {mib(cli_rss)}")
        if restore is not None:
            print(f"iptables-legacy-restore --test:       {ms(restore)}  peak RSS {mib(restore_rss)}")
            print(f"RATIO CLI parse / restore --test:     {cli_s / restore:8.2f}    (target <= 1.00)")
        else:
            print(f"iptables-restore --test: skipped ({ns.why}); no ratio")
        print(
            f"MEMORY CLI peak RSS / file size:      {cli_rss / size:8.2f}x   (target <= 3.00x; "
            f"the interpreter with the CLI imported alone: {mib(start_rss)}, {ms(start_s).strip()})"
        )
    finally:
        os.unlink(path)


def bench_growth(args: argparse.Namespace) -> None:
    from meshviz.engine.netfilter.parser import parse_iptables

    gen = load_module("gen_kube_proxy_rules").generate
    sizes = (1000, 10000, 40000)
    print(f"== growth: in-process parse_iptables at {', '.join(map(str, sizes))} services")
    points: list[tuple[int, float]] = []
    for n in sizes:
        text = gen(n, 3, 7)
        t, res = median_call(lambda text=text: parse_iptables(text, source="kube.rules"), args.repeat)
        assert not res.errors  # type: ignore[attr-defined]
        rules = sum(rs.rule_count() for rs in res.rulesets)  # type: ignore[attr-defined]
        res = None
        print(f"{n:6d} services, {rules:7d} rules: {ms(t)}  ({t / rules * 1e6:5.2f} us per rule)")
        points.append((n, t))
    (n0, t0), (n1, t1) = points[0], points[-1]
    k = math.log(t1 / t0) / math.log(n1 / n0)
    print(f"GROWTH exponent {n0}->{n1} services:   {k:8.2f}    (1.00 = linear)")


def bench_envoy(args: argparse.Namespace) -> None:
    import json

    gen = load_module("gen_envoy_dump").generate
    dump = gen(args.scale)
    # plant secrets the redaction must find (a private key and a password, as in a leaked SDS/bootstrap dump)
    dump.setdefault("configs", []).append(
        {
            "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
            "dynamic_active_secrets": [
                {
                    "name": "default",
                    "secret": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                        "name": "default",
                        "tls_certificate": {
                            "private_key": {"inline_bytes": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2Z0lC"},
                            "certificate_chain": {"inline_string": "-----BEGIN CERTIFICATE-----\nMIIB\n"},
                        },
                    },
                }
            ],
        }
    )
    path = write_temp(json.dumps(dump, indent=1), ".json")
    dump = None
    size = os.path.getsize(path)
    try:
        print(f"== envoy: Istio sidecar config dump, scale {args.scale}, {mib(size)}")
        cli = [PY, "-m", "meshviz.engine", "parse", path, "--kind", "envoy", "--format", "summary"]
        plain = [PY, "-c", "import json, sys; json.load(open(sys.argv[1]))", path]
        run_process(cli)
        cli_s, cli_rss = median_process(cli, args.repeat)
        js_s, js_rss = median_process(plain, args.repeat)
        print(f"meshviz CLI parse --kind envoy:       {ms(cli_s)}  peak RSS {mib(cli_rss)}")
        print(f"python -c json.load(F):               {ms(js_s)}  peak RSS {mib(js_rss)}")
        print(f"RATIO CLI parse / json.load process:  {cli_s / js_s:8.2f}    (target <= 1.00)")
        print(f"MEMORY CLI peak RSS / file size:      {cli_rss / size:8.2f}x   (target <= 3.00x)")
        out = subprocess.run(
            [*cli[:-1], "json"], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
        )
        redacted = "secret value(s) redacted" in out.stdout and "LS0tLS1CRUdJTiBQUklWQVRF" not in out.stdout
        print(f"redaction: the planted private key {'is redacted' if redacted else 'IS NOT REDACTED'}")
        # the summary reads the dump lazily (envoy/lazy.py): it must find the secrets too, and print none
        out = subprocess.run(cli, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        counted = next((ln for ln in out.stdout.splitlines() if ln.startswith("redacted:")), "no redaction reported")
        shown = "LS0tLS1CRUdJTiBQUklWQVRF" in out.stdout or "LS0tLS1CRUdJTiBQUklWQVRF" in out.stderr
        print(f"redaction in the summary: {counted}; the key {'IS SHOWN' if shown else 'is not shown'}")
    finally:
        os.unlink(path)


def story_evidence(services: int) -> Any:
    from dataclasses import replace

    from meshviz.analyses.examples import get  # plain data, no Django

    ex = get("tproxy-original-src-app-sees-client")
    assert ex is not None
    ev = ex.engine_evidence()
    kube = load_module("gen_kube_proxy_rules").generate(services, 3, 7)
    return replace(ev, iptables=ev.iptables.rstrip("\n") + "\n" + kube)


def bench_story(args: argparse.Namespace) -> None:
    from meshviz.engine.explorer.whatif import default_connections
    from meshviz.engine.pipeline import evidence as evidence_module

    ev = story_evidence(args.services)
    conn = default_connections(ev)[0]
    print(f"== story: a node-sized pod (Istio TPROXY example + {args.services} services, {mib(len(ev.iptables))})")
    print(f"connection: {conn}")
    from meshviz.engine.envoy.parser import parse_config_dump
    from meshviz.engine.pipeline import pod as api

    # default_connections parsed the evidence: forget every parse, so the first story starts from the texts
    try:
        from meshviz.engine.pipeline import parsecache

        parsecache.cache_clear()
    except ImportError:  # the code before issue 15 (bench/run.py run on an older tree)
        pass
    try:  # the rules' own parse-once cache (the upload's validation, the stories, the pages share it)
        from meshviz.engine.pipeline import rulescache

        rulescache.rules_cache_clear()
    except ImportError:
        pass
    parse_config_dump.cache_clear()
    evidence_module.pod_of.cache_clear()
    evidence_module.simulated_pod.cache_clear()
    try:  # the Hosts kept per snapshot: sim.simulate since issue 13, pipeline.pod before
        from meshviz.engine.sim import simulate as _sim

        _sim._HOSTS.clear()
    except (ImportError, AttributeError):
        api._HOSTS.clear()
    t0 = time.perf_counter()
    first = evidence_module.connection_story(ev, conn)
    cold = time.perf_counter() - t0
    warm_s, again = median_call(lambda: evidence_module.connection_story(ev, conn), args.repeat)
    same = again.summary == first.summary  # type: ignore[attr-defined]
    print(f"first story (parses, indexes, traces):{ms(cold)}")
    print(f"same story again (parse-once cache):  {ms(warm_s)}  (median; same verdict: {same})")
    print(f"RATIO again / first:                  {warm_s / cold:8.2f}")


NFT_CACHE = Path(tempfile.gettempdir()) / "meshviz-bench-nft"


def nft_listing(services: int) -> tuple[Path | None, str]:
    """What `nft list ruleset` prints for kube-proxy's nftables ruleset of `services` services
    (`gen_kube_proxy_nft.py`, 3 endpoints at most, seed 7), loaded with `nft -f` into a throwaway network
    namespace; cached under the temporary directory (loading 10,000 services takes nft ~1 minute).  (None, why)
    when it cannot be made here."""
    import hashlib

    script = load_module("gen_kube_proxy_nft").generate(services, 3, 7)
    digest = hashlib.sha256(script.encode()).hexdigest()[:16]
    path = NFT_CACHE / f"kube-proxy-{services}-{digest}.nft-list"
    if path.exists():
        return path, ""
    if os.geteuid() != 0:
        return None, "needs root for a network namespace"
    if subprocess.run(["which", "nft"], capture_output=True).returncode != 0:
        return None, "nft not installed"
    name = f"mvzbenchnft{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        return None, "cannot create a network namespace"
    try:
        print(f"  (loading {services} services with nft -f in a namespace: once, then cached in {NFT_CACHE})")
        load = subprocess.run(
            ["ip", "netns", "exec", name, "nft", "-f", "-"], input=script.encode(), capture_output=True
        )
        if load.returncode != 0:
            return None, f"nft -f refused the ruleset: {load.stderr.decode()[:200]}"
        listed = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "ruleset"], capture_output=True)
        if listed.returncode != 0:
            return None, f"nft list ruleset failed: {listed.stderr.decode()[:200]}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    NFT_CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(listed.stdout)
    tmp.rename(path)
    return path, ""


def bench_nft(args: argparse.Namespace, ns: Namespace) -> None:
    path, why = nft_listing(args.services)
    if path is None:
        print(f"== nftables: skipped ({why})")
        return
    text = path.read_text()
    size = len(text.encode())
    lines = text.count(chr(10))
    print(f"== nftables: kube-proxy nft ruleset listed by nft, {args.services} services, {lines} lines, {mib(size)}")
    cli = [PY, "-m", "meshviz.engine", "parse", str(path), "--kind", "nftables", "--format", "summary"]
    run_process(cli)  # warm the page cache and .pyc files
    cli_s, cli_rss = median_process(cli, args.repeat)
    rules = write_temp(load_module("gen_kube_proxy_rules").generate(args.services, 3, 7), ".rules")
    try:
        restore: float | None = None
        restore_rss = 0
        if ns.name:
            restore, restore_rss = median_process(
                ["ip", "netns", "exec", ns.name, "iptables-legacy-restore", "--test"], args.repeat, stdin_path=rules
            )
    finally:
        os.unlink(rules)
    print(f"meshviz CLI parse --kind nftables:    {ms(cli_s)}  peak RSS {mib(cli_rss)}")
    if restore is not None:
        print(f"iptables-legacy-restore --test:       {ms(restore)}  peak RSS {mib(restore_rss)}  (the same cluster)")
        print(f"RATIO CLI parse / restore --test:     {cli_s / restore:8.2f}    (target <= 1.00)")
    else:
        print(f"iptables-restore --test: skipped ({ns.why}); no ratio")
    print(f"MEMORY CLI peak RSS / file size:      {cli_rss / size:8.2f}x")

    from meshviz.engine.nftables.parser import parse_nftables

    fast_s, fast = median_call(lambda: parse_nftables(text, source="kube.nft-list"), args.repeat)
    general_s, general = median_call(
        lambda: parse_nftables(text, source="kube.nft-list", fast_listing=False), args.repeat
    )
    same = fast == general
    fast = general = None
    print(f"in-process parse: listing parser {ms(fast_s).strip()}, general parser {ms(general_s).strip()}")
    print(f"RATIO listing parser / general parser: {fast_s / general_s:7.2f}   (same model and errors: {same})")

    from meshviz.engine.core.model import Packet
    from meshviz.engine.pipeline.load import load_snapshot
    from meshviz.engine.pipeline.pod import trace
    from meshviz.engine.sim.simulate import Sender

    loaded = load_snapshot(nftables=text, pod_ip="10.0.0.10")
    mid = args.services // 2
    vip = ipaddress.ip_address(0xAC100000 + mid + 10)
    packet = Packet(src=ipaddress.ip_address("0.0.0.0"), dst=vip, protocol="tcp", sport=40000, dport=80)
    sender = Sender(uid=1000, gid=1000)
    cold_s, _ = median_call(lambda: trace(loaded.snapshot, packet, sender=sender), 1)
    trace_s, traces = median_call(lambda: trace(loaded.snapshot, packet, sender=sender), max(args.repeat, 20))
    assert isinstance(traces, list)
    print(f"first trace to service #{mid} ({vip}:80, reads the chains it meets): {ms(cold_s).strip()}")
    print(f"one trace to service #{mid}: {trace_s * 1000:.2f} ms ({len(traces)} numgen branches)")


def bench_trace(args: argparse.Namespace) -> None:
    from meshviz.engine.core.model import Packet
    from meshviz.engine.pipeline.load import load_snapshot
    from meshviz.engine.pipeline.pod import trace
    from meshviz.engine.sim.simulate import Host, Sender

    text = load_module("gen_kube_proxy_rules").generate(args.services, 3, 7)
    print(f"== trace: {args.services} services")
    loaded = load_snapshot(iptables=text, pod_ip="10.0.0.10")
    compile_s, _ = median_call(lambda: Host(loaded.snapshot), 1)
    print(f"index the chains (Host):              {ms(compile_s)}  (once per snapshot; rules compile on use)")
    mid = args.services // 2
    vip = ipaddress.ip_address(0xAC100000 + mid + 10)
    packet = Packet(src=ipaddress.ip_address("0.0.0.0"), dst=vip, protocol="tcp", sport=40000, dport=80)
    sender = Sender(uid=1000, gid=1000)
    cold_s, _ = median_call(lambda: trace(loaded.snapshot, packet, sender=sender), 1)
    print(f"first trace (compiles what it meets): {ms(cold_s)}")
    trace_s, traces = median_call(lambda: trace(loaded.snapshot, packet, sender=sender), max(args.repeat, 20))
    assert isinstance(traces, list)
    per_trace = trace_s / len(traces)
    print(f"one trace to service #{mid} ({vip}:80): {per_trace * 1000:.2f} ms per trace (target <= 10 ms)")


SECTIONS = ("iptables", "growth", "envoy", "story", "nft", "trace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--scale", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ", ".join(SECTIONS))
    args = ap.parse_args()
    args.repeat = max(3, args.repeat)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    for s in only:
        if s not in SECTIONS:
            raise SystemExit(f"unknown section {s!r} ({', '.join(SECTIONS)})")
    print(f"meshviz bench: medians of {args.repeat} runs, ratios against baselines measured in this run")
    # the CLI's modules as an installed package has them, compiled: with PYTHONDONTWRITEBYTECODE set (as on some
    # machines and containers) every measured process would compile them again (~20 ms and 3 MiB more each)
    compileall.compile_dir(str(ROOT / "meshviz"), quiet=1)
    with Namespace() as ns:
        for s in SECTIONS:
            if s not in only:
                continue
            if s == "iptables":
                bench_iptables(args, ns)
            elif s == "growth":
                bench_growth(args)
            elif s == "envoy":
                bench_envoy(args)
            elif s == "story":
                bench_story(args)
            elif s == "nft":
                bench_nft(args, ns)
            else:
                bench_trace(args)
            sys.stdout.flush()
    print_recorded()
    return 0


def print_recorded() -> None:
    """The figures recorded before and after issue 15 (docs/performance.md), to set this run's beside."""
    doc = ROOT / "docs" / "performance.md"
    if not doc.exists():
        return
    text = doc.read_text()
    start = text.find("## Figures")
    if start < 0:
        return
    rows = [ln for ln in text[start:].split("\n## ", 1)[0].splitlines() if ln.startswith("|") and "---" not in ln]
    print("== recorded in docs/performance.md (the same bench, before -> after issue 15, a loaded 2-core machine)")
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        print(f"{cells[0]:<64} {cells[1]:>18}  {cells[2]:>18}")


if __name__ == "__main__":
    raise SystemExit(main())
