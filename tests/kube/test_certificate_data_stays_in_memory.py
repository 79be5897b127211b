"""Certificate and key data from a kubeconfig are handed to the client as in-memory files, never written
to disk, and the files disappear when the ApiClient is closed."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from meshviz.collect.kube import api_client

CA = b"-----BEGIN CERTIFICATE-----\nMIIBfake-ca\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nMIIBfake-client\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN EC PRIVATE KEY-----\nMHcfake-key-material\n-----END EC PRIVATE KEY-----\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_certificate_data_stays_in_memory() -> None:
    kubeconfig = f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:6443", certificate-authority-data: "{_b64(CA)}"}}}}]
users: [{{name: u, user: {{client-certificate-data: "{_b64(CERT)}", client-key-data: "{_b64(KEY)}"}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.iterdir())
    api = api_client(kubeconfig=kubeconfig)
    cfg = api.configuration
    paths = [cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file]
    assert all(p.startswith("/proc/self/fd/") for p in paths)
    assert [Path(p).read_bytes() for p in paths] == [CA, CERT, KEY]
    assert all("memfd:" in os.readlink(p) for p in paths)
    new = set(tmp.iterdir()) - before
    assert not [p for p in new if p.is_file() and KEY in p.read_bytes()]
    api.close()
    assert not any(os.path.exists(p) and "memfd:meshviz" in os.readlink(p) for p in paths)  # fds closed
