"""The fuzz property: every input gives a result, ParseErrors or a named limit — nothing else — within a time and
memory bound.  `bounded` runs one input, checks the bounds and records the figures (`figures.json`)."""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

#: Per input.  The slowest real inputs take well under a second; the budget leaves room for a loaded 2-core machine.
SECONDS = float(os.environ.get("MESHVIZ_FUZZ_SECONDS", "10"))
#: Peak resident memory of the whole test process.
MAX_RSS_MB = float(os.environ.get("MESHVIZ_FUZZ_MAX_RSS_MB", "1500"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

T = TypeVar("T")


def examples(target: str, default: int) -> int:
    """Inputs to run for `target`: MESHVIZ_FUZZ_EXAMPLES_<TARGET> (e.g. ..._IP_RULE), else MESHVIZ_FUZZ_EXAMPLES
    scaled by `default` / 25 (the slice `make test` runs is `default` inputs)."""
    own = os.environ.get("MESHVIZ_FUZZ_EXAMPLES_" + target.upper().replace("-", "_"))
    if own:
        return int(own)
    total = os.environ.get("MESHVIZ_FUZZ_EXAMPLES")
    return max(1, int(total) * default // 25) if total else default


@dataclass
class Figures:
    inputs: int = 0
    slowest_seconds: float = 0.0
    slowest_input: str = ""
    limits_reached: int = 0


FIGURES: dict[str, Figures] = {}
#: This run's entry in figures.json (rewritten every CHECKPOINT inputs, so an interrupted run keeps its figures).
RUN_STARTED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
CHECKPOINT = 2000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bounded(target: str, describe: Any, fn: Callable[[], T]) -> T:
    """Run `fn` (one input of `target`), check the time and memory bounds, record the figures."""
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    fig = FIGURES.setdefault(target, Figures())
    fig.inputs += 1
    if sum(f.inputs for f in FIGURES.values()) % CHECKPOINT == 0:
        write_figures()
    if elapsed > fig.slowest_seconds:
        fig.slowest_seconds = elapsed
        fig.slowest_input = repr(describe)[:300]
    assert elapsed < SECONDS, f"{target}: {elapsed:.1f} s for one input (bound {SECONDS} s): {repr(describe)[:300]}"
    rss = peak_rss_mb()
    assert rss < MAX_RSS_MB, f"{target}: peak memory {rss:.0f} MB (bound {MAX_RSS_MB} MB): {repr(describe)[:300]}"
    return result


def note_limit(target: str) -> None:
    FIGURES.setdefault(target, Figures()).limits_reached += 1


def write_figures() -> None:
    if not FIGURES:
        return
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "fuzz-figures.json"
    previous: dict[str, Any] = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = {}
    runs = [r for r in previous.get("runs", []) if r.get("started") != RUN_STARTED]
    runs.append(
        {
            "started": RUN_STARTED,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "peak_rss_mb": round(peak_rss_mb()),
            "targets": {name: asdict(fig) for name, fig in sorted(FIGURES.items())},
            "total_inputs": sum(f.inputs for f in FIGURES.values()),
        }
    )
    path.write_text(json.dumps({"runs": runs}, indent=1))
