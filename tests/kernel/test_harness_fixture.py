"""Self-tests of the fixture policy: skip when namespaces are unavailable, fail instead under CI=true."""

from __future__ import annotations

import pytest

from tests.kernel import conftest
from tests.kernel.netns import Backend, PodNet

pytestmark = pytest.mark.kernel


def _no_netns() -> tuple[bool, str]:
    return False, "kernel tests need root (simulated)"


def test_unavailable_namespaces_skip_with_the_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "netns_available", _no_netns)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"need root \(simulated\)"):
        conftest.require_netns()


def test_unavailable_namespaces_fail_the_test_when_ci_is_true(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "netns_available", _no_netns)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"must run in CI .* need root \(simulated\)"):
        conftest.require_netns()


def test_missing_iptables_backend_is_treated_like_missing_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "netns_available", lambda: (True, ""))
    monkeypatch.setattr(conftest, "backend_available", lambda backend: (False, f"no {backend}"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no legacy"):
        conftest.require_netns("legacy")


@pytest.mark.parametrize("podnet", ["legacy", "nft"], indirect=True)
def test_podnet_fixture_is_parametrized_by_backend(podnet: PodNet, request: pytest.FixtureRequest) -> None:
    assert podnet.backend == request.node.callspec.params["podnet"]
    podnet.load_iptables("*filter\n-A INPUT -p tcp --dport 1 -j DROP\nCOMMIT\n")
    assert "--dport 1 -j DROP" in podnet.iptables_save()
    other: Backend = "nft" if podnet.backend == "legacy" else "legacy"
    assert "--dport 1" not in podnet.iptables_save(backend=other)  # the two backends are separate


def test_podnet_fixture_defaults_to_nft(podnet: PodNet) -> None:
    assert podnet.backend == "nft"
