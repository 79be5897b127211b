"""Fuzzing profiles: `make test` runs a small slice of every target (MESHVIZ_FUZZ_EXAMPLES, default 25 inputs each);
`make fuzz` runs the `fuzz` profile with enough inputs per target for >= 1,000,000 in all (docs/development.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.fuzz.harness import ARTIFACTS, write_figures

_EXAMPLES = int(os.environ.get("MESHVIZ_FUZZ_EXAMPLES", "25"))
_COMMON = {
    "deadline": None,  # the harness checks a wall-clock bound per input itself (harness.SECONDS)
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile("meshviz-slice", max_examples=_EXAMPLES, database=None, derandomize=False, **_COMMON)
settings.register_profile(
    "meshviz-fuzz",
    max_examples=_EXAMPLES,
    database=DirectoryBasedExampleDatabase(str(ARTIFACTS / "hypothesis")),
    **_COMMON,
)
settings.load_profile(os.environ.get("MESHVIZ_FUZZ_PROFILE", "meshviz-slice"))


@pytest.fixture(scope="session", autouse=True)
def fuzz_figures() -> Iterator[None]:
    yield
    write_figures()
