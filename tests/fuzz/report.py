"""Print the figures of the last fuzz run (tests/artifacts/fuzz-figures.json): `python -m tests.fuzz.report`."""

from __future__ import annotations

import json

from tests.fuzz.harness import ARTIFACTS


def main() -> None:
    runs = json.loads((ARTIFACTS / "fuzz-figures.json").read_text())["runs"]
    run = runs[-1]
    print(f"fuzz run finished {run['finished']}: {run['total_inputs']:,} inputs, peak memory {run['peak_rss_mb']} MB")
    for name, fig in run["targets"].items():
        print(
            f"  {name:9} {fig['inputs']:>9,} inputs  slowest {fig['slowest_seconds'] * 1000:8.1f} ms"
            f"  named limits reached {fig['limits_reached']:>6,}  slowest input: {fig['slowest_input'][:80]}"
        )


if __name__ == "__main__":
    main()
