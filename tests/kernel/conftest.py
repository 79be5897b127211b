"""Fixtures for the kernel conformance tests (see docs/kernel-tests.md).

* ``podnet``: a fresh :class:`~tests.kernel.netns.PodNet` per test, torn down
  afterwards.  Parametrize the iptables backend indirectly::

      @pytest.mark.parametrize("podnet", ["legacy", "nft"], indirect=True)
      def test_x(podnet: PodNet) -> None: ...

  Without parametrization the backend is ``nft``.
* ``netns_required``: only the availability check (for tests that build their
  own PodNet).

When network namespaces are unavailable (not root, no ``ip``, no
``iptables-restore``, namespace creation refused) these fixtures *skip* with
the reason -- except when the environment has ``CI=true``: CI must run the
kernel tests, so there the same condition *fails* the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.kernel.netns import (
    BACKENDS,
    DEFAULT_BACKEND,
    Backend,
    PodNet,
    backend_available,
    cleanup_stale_namespaces,
    netns_available,
)

_HERE = Path(__file__).resolve().parent
_stale_cleaned = False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kernel: needs root and network namespaces (conformance against the real kernel)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/kernel/ carries the `kernel` marker."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.kernel)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"kernel tests must run in CI (CI=true) but cannot: {reason}", pytrace=False)
    pytest.skip(reason)


def require_netns(backend: Backend | None = None) -> None:
    """Skip (or, with CI=true, fail) unless namespaces and the backend are usable."""
    global _stale_cleaned
    ok, reason = netns_available()
    if not ok:
        _unavailable(reason)
    if backend is not None:
        ok, reason = backend_available(backend)
        if not ok:
            _unavailable(reason)
    if not _stale_cleaned:
        _stale_cleaned = True
        cleanup_stale_namespaces()


@pytest.fixture
def netns_required() -> None:
    require_netns()


@pytest.fixture
def podnet(request: pytest.FixtureRequest) -> Iterator[PodNet]:
    backend: Backend = getattr(request, "param", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise ValueError(f"podnet parameter must be one of {BACKENDS}, not {backend!r}")
    require_netns(backend)
    with PodNet(backend=backend) as pn:
        yield pn
