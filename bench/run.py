"""Benchmark: parse a kube-proxy-sized ruleset and trace one connection through it.

    python bench/run.py [--services 10000] [--repeat 5]

Prints, for the same file in the same run:
  * meshviz parse time (median of --repeat runs),
  * `iptables-restore --test` time on the same file inside a throwaway network
    namespace (median; skipped with a reason when namespaces are unavailable),
  * the one-time compile of the parsed ruleset into the simulator's indexed form,
  * one trace of a connection to a service in the middle of the ruleset (median).
Targets (issue "Foundation and the traversal engine"): parsing no slower than
iptables-restore --test; one trace <= 10 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meshviz.engine.core.model import Packet  # noqa: E402
from meshviz.engine.netfilter.parser import IptablesParseResult, parse_iptables  # noqa: E402
from meshviz.engine.pipeline.pod import load_snapshot, trace  # noqa: E402
from meshviz.engine.sim.simulate import Host, Sender  # noqa: E402

GENERATOR_CANDIDATES = (ROOT.parent / "shared" / "bench" / "gen_kube_proxy_rules.py",)


def load_generator() -> Callable[[int, int, int], str]:
    for path in GENERATOR_CANDIDATES:
        if path.exists():
            spec = importlib.util.spec_from_file_location("gen_kube_proxy_rules", path)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            gen: Callable[[int, int, int], str] = mod.generate
            return gen
    raise SystemExit("../shared/bench/gen_kube_proxy_rules.py not found")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(repeat):
        result = None  # free the previous run's result outside the timed region
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def iptables_restore_test(path: str, repeat: int) -> float | None:
    if os.geteuid() != 0:
        print("iptables-restore --test: skipped (needs root for a network namespace)")
        return None
    ns = f"mvzbench{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        print("iptables-restore --test: skipped (cannot create a network namespace)")
        return None
    try:
        times = []
        for _ in range(repeat):
            with open(path) as f:
                t0 = time.perf_counter()
                r = subprocess.run(
                    ["ip", "netns", "exec", ns, "iptables-legacy-restore", "--test"], stdin=f, capture_output=True
                )
                times.append(time.perf_counter() - t0)
            if r.returncode != 0:
                print("iptables-restore --test failed:", r.stderr.decode()[:500])
                return None
        return statistics.median(times)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    text = load_generator()(args.services, 3, 7)
    lines = text.count("\n")
    with tempfile.NamedTemporaryFile("w", suffix=".rules", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        parse_s, parsed = timed(lambda: parse_iptables(text, source=path), args.repeat)
        res = parsed
        assert isinstance(res, IptablesParseResult)
        assert not res.errors, res.errors[:3]
        rules = sum(rs.rule_count() for rs in res.rulesets)
        print(f"ruleset: {args.services} services, {lines} lines, {rules} rules")
        print(f"meshviz parse:               median {parse_s * 1000:8.1f} ms over {args.repeat} runs")
        ipt = iptables_restore_test(path, args.repeat)
        if ipt is not None:
            print(f"iptables-restore --test:     median {ipt * 1000:8.1f} ms over {args.repeat} runs")
            print(f"ratio parse / restore-test:  {parse_s / ipt:.2f} (target <= 1.00)")

        loaded = load_snapshot(iptables=text, pod_ip="10.0.0.10")
        compile_s, _ = timed(lambda: Host(loaded.snapshot), 1)
        print(f"index the chains (Host):     {compile_s * 1000:8.1f} ms (once per snapshot; rules compile on use)")
        mid = args.services // 2
        vip = ipaddress.ip_address(0xAC100000 + mid + 10)
        packet = Packet(src=ipaddress.ip_address("0.0.0.0"), dst=vip, protocol="tcp", sport=40000, dport=80)
        sender = Sender(uid=1000, gid=1000)
        cold_s, _ = timed(lambda: trace(loaded.snapshot, packet, sender=sender), 1)
        print(f"first trace (indexes + compiles the rules it meets): {cold_s * 1000:.1f} ms")
        trace_s, traces = timed(lambda: trace(loaded.snapshot, packet, sender=sender), max(args.repeat, 20))
        assert isinstance(traces, list)
        per_trace = trace_s / len(traces)
        dsts = sorted({str(t.final_packet.dst) for t in traces if t.final_packet})
        print(
            f"trace to service #{mid} ({vip}:80): median {trace_s * 1000:.2f} ms for {len(traces)} branch "
            f"trace(s) = {per_trace * 1000:.2f} ms per trace (target <= 10 ms); endpoints {', '.join(dsts)}"
        )
    finally:
        os.unlink(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
