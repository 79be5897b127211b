"""The collector script's tests: a fake API server over HTTPS for the real kubectl (`collect_sh.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube.fake_apiserver import FakeApiServer, Scenario


@pytest.fixture
def tls_apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(Scenario.istio(), tls=True) as fake:
        yield fake
