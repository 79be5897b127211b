"""Errors told a closed port ("ProtocolError") from an HTTP server ("404: <!DOCTYPE html>...") and reflected response
bodies: a port-scan oracle.  Every way of not reaching a Kubernetes API server now gives the same kind and message,
and no body is ever echoed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from meshviz.clusters import services
from meshviz.collect.errors import CollectError
from meshviz.collect.kube import UNREACHABLE
from tests.clusters.helpers import closed_port, kubeconfig_for

pytestmark = pytest.mark.django_db
SECRET_BODY = "<!DOCTYPE html><title>internal admin panel 7f3a</title>"


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    from cryptography.fernet import Fernet

    settings.MESHVIZ_ENCRYPTION_KEY = Fernet.generate_key().decode()
    settings.MESHVIZ_COLLECT_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.MESHVIZ_KUBE_TIMEOUT = 1.0


def _serve(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def _html_404(conn: socket.socket) -> None:
    conn.recv(65536)
    body = SECRET_BODY.encode()
    conn.sendall(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    conn.close()


def _garbage(conn: socket.socket) -> None:
    conn.recv(65536)
    conn.sendall(b"-ERR unknown command 'GET'\r\n")  # what Redis answers
    conn.close()


def _silent(conn: socket.socket) -> None:
    threading.Event().wait(5)
    conn.close()


@pytest.fixture
def html_server() -> Iterator[int]:
    yield from _serve(_html_404)


@pytest.fixture
def garbage_server() -> Iterator[int]:
    yield from _serve(_garbage)


@pytest.fixture
def silent_server() -> Iterator[int]:
    yield from _serve(_silent)


def _error(user: User, port: int) -> CollectError:
    cluster = services.create_cluster(
        owner=user,
        name=f"c{port}",
        in_cluster=False,
        kubeconfig=kubeconfig_for(f"http://127.0.0.1:{port}"),
        check=False,
    )
    with pytest.raises(CollectError) as caught:
        services.namespaces(cluster)
    return caught.value


def test_every_unreachable_server_gives_the_same_error(
    user: User, html_server: int, garbage_server: int, silent_server: int
) -> None:
    errors = {
        name: _error(user, port)
        for name, port in {
            "closed": closed_port(),
            "html": html_server,
            "redis-like": garbage_server,
            "silent": silent_server,
        }.items()
    }
    kinds = {e.kind for e in errors.values()}
    messages = {e.message for e in errors.values()}
    assert kinds == {"unreachable"}, errors
    assert len(messages) == 1, messages
    (message,) = messages
    assert UNREACHABLE in message
    for e in errors.values():
        assert "DOCTYPE" not in e.message and "admin panel" not in e.message and "ERR" not in e.message
