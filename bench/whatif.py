"""Benchmark: a what-if edit of a typical pod, re-traced (issue 6: <= 200 ms server time).

    python bench/whatif.py [--example tproxy-original-src-app-sees-client] [--runs 30]

The pod is a bundled TPROXY example (its rule count is printed; a typical pod has <= 200 rules) with the
connections meshviz analyses by default (one inbound per application port and one outbound).  Each run inserts one
rule (a different one every run, so nothing is served from a cache) into mangle ISTIO_INBOUND and calls
`whatif(...)`: the edit is applied to the texts, verified by re-parsing, and every connection is re-traced on the
edited evidence.  Two figures, median and p95:

* "warm": the original stories are already known (the web page has them: `whatif(..., before=...)` or the
  engine's story cache), which is the what-if request the explorer makes;
* "cold": every cache cleared first, so the original is re-traced too (two full story runs per connection).

Target: the warm median and p95 <= 200 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meshviz.analyses.examples import get  # noqa: E402  (plain data, no Django)
from meshviz.engine.explorer import whatif as whatif_module  # noqa: E402
from meshviz.engine.explorer.edits import Edit  # noqa: E402
from meshviz.engine.explorer.whatif import default_connections, retrace, whatif  # noqa: E402
from meshviz.engine.netfilter.parser import parse_iptables  # noqa: E402
from meshviz.engine.pipeline.evidence import Evidence  # noqa: E402

TARGET_MS = 200.0


def evidence(name: str) -> Evidence:
    ex = get(name)
    if ex is None:
        raise SystemExit(f"no bundled example {name!r}")
    return ex.engine_evidence()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--example", default="tproxy-original-src-app-sees-client")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    runs = max(20, args.runs)

    ev = evidence(args.example)
    rules = sum(rs.rule_count() for rs in parse_iptables(ev.iptables).rulesets)
    conns = default_connections(ev)
    print(f"pod: bundled example {args.example}: {rules} iptables rules, Envoy dump {len(ev.envoy or '')} bytes")
    print(f"connections ({len(conns)}): " + "; ".join(str(c) for c in conns))
    print(f"edit: insert one rule into mangle ISTIO_INBOUND (a different --dport each run), {runs} runs each")

    def edit(i: int) -> list[Edit]:
        return [
            Edit(
                op="insert",
                table="mangle",
                chain="ISTIO_INBOUND",
                index=1,
                rule=f"-p tcp --dport {20000 + i} -j RETURN",
            )
        ]

    # warm: the original's stories known (as the analysis page has them)
    before = retrace(ev, conns)
    warm: list[float] = []
    for i in range(runs):
        t0 = time.perf_counter()
        result = whatif(ev, conns, edit(i), before=before)
        warm.append((time.perf_counter() - t0) * 1000)
        assert result.ok and len(result.diff) == len(conns), result.errors
    # cold: every cache cleared, the original re-traced too
    cold: list[float] = []
    for i in range(runs):
        whatif_module._cached_story.cache_clear()
        whatif_module._parsed.cache_clear()
        t0 = time.perf_counter()
        result = whatif(ev, conns, edit(runs + i))
        cold.append((time.perf_counter() - t0) * 1000)
        assert result.ok
    for label, values in (("warm", warm), ("cold", cold)):
        print(
            f"{label}: median {statistics.median(values):.1f} ms, p95 {p95(values):.1f} ms, "
            f"min {min(values):.1f} ms, max {max(values):.1f} ms"
        )
    ok = statistics.median(warm) <= TARGET_MS and p95(warm) <= TARGET_MS
    print(f"target: <= {TARGET_MS:.0f} ms per what-if re-trace: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
