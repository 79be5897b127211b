"""Stand-in processes for the kernel tests: a TCP listener and a TCP connector.

This file is run as a script inside a network namespace, e.g.::

    ip netns exec NS python3 -S standins.py listen '{"name": "app", "port": 8080}'
    ip netns exec NS python3 -S standins.py connect '{"dst": "10.80.0.10", "port": 8080}'

It uses the standard library only and is started with ``-S`` (no site import)
so that a process starts in ~20 ms.  tests/kernel/netns.py drives it; tests do
not run it directly.

Protocol
--------
``listen`` binds one TCP socket, optionally with IP_TRANSPARENT, then drops to
the requested gid/uid (``setgroups([])``, ``setgid``, ``setuid``) and accepts
forever.  It writes one JSON object per line on stdout:

* ``{"event": "listening", ...}`` once the socket listens (or
  ``{"event": "error", ...}`` and exit 1 when it could not);
* ``{"event": "accepted", ...}`` for every accepted connection, written
  *before* the connection is served, carrying the listener name, the peer the
  application sees (getpeername), the local address (getsockname) and the
  original destination from ``SO_ORIGINAL_DST`` (``null`` plus an errno name
  when the kernel has none).

Each accepted connection is served in a thread: it reads one line and answers
with one JSON line that repeats the accept record and adds ``received``, then
closes.  The connector uses that answer to report what the server saw.

``connect`` opens one TCP connection and prints one JSON result (see
``ConnectResult`` in netns.py).  Privileges are dropped *before* the socket is
created because iptables' ``-m owner`` matches the credentials of the socket's
file, which are fixed when the socket is created (or accepted).

``udp-listen`` / ``udp-send`` are the UDP counterparts (optional extras): the
listener reports each datagram's source and, for transparent sockets, the
original destination from ``IP_RECVORIGDSTADDR``; it echoes a JSON answer.

``sidecar`` is a stand-in Envoy inbound listener (see ``_Sidecar``): for every
accepted connection it records the original destination, opens one upstream
connection (IP_TRANSPARENT, SO_MARK and a bind when asked), relays the first
line and the upstream's reply prefixed ``VIA-PROXY <name>``, or answers
``PROXY-ERROR <code> [<errno>]`` (UF: connect failed; LOOP: the connection is
one of its own upstream connections; UC: the upstream closed; NR: no original
destination).  Events: ``accepted``, ``upstream``, ``relayed``, ``loop``.

``request`` is the end-to-end client: connect, send a line, print the raw line
that came back (``E2EResult`` in netns.py parses it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from typing import Any

SOL_IP = 0
SOL_IPV6 = 41
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75
IP_RECVORIGDSTADDR = 20
SO_ORIGINAL_DST = 80
SO_MARK = 36

CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13

_emit_lock = threading.Lock()

Json = dict[str, Any]


def emit(obj: Json) -> None:
    line = json.dumps(obj, sort_keys=True)
    with _emit_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def errno_name(exc: BaseException) -> str | None:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return errno.errorcode.get(code, str(code))
    return None


def addr(sockaddr: Any) -> list[Any]:
    host = str(sockaddr[0])
    if host.startswith("::ffff:") and "." in host:  # an IPv4 peer of a dual-stack socket
        host = host[len("::ffff:") :]
    return [host, sockaddr[1]]


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def tcp_socket(host: str) -> socket.socket:
    """A TCP socket of the address family of `host`."""
    return socket.socket(family_of(host), socket.SOCK_STREAM)


def set_transparent(sock: socket.socket) -> None:
    if sock.family == socket.AF_INET6:
        sock.setsockopt(SOL_IPV6, IPV6_TRANSPARENT, 1)
    else:
        sock.setsockopt(SOL_IP, IP_TRANSPARENT, 1)


def wildcard_of(host: str) -> str:
    return "::" if ":" in host else "0.0.0.0"


def _set_net_caps_effective() -> None:
    """After setuid with PR_SET_KEEPCAPS, make NET_ADMIN/NET_RAW/NET_BIND_SERVICE effective.

    This models Envoy running as uid 1337 with the NET_ADMIN capability (what
    Istio grants the sidecar for TPROXY interception mode).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    mask = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_NET_BIND_SERVICE)
    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    data[0].effective = mask
    data[0].permitted = mask
    data[0].inheritable = 0
    if libc.capset(ctypes.byref(header), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, "capset: " + os.strerror(code))


def open_listener(
    bind_addr: str, port: int, transparent: bool, uid: int, gid: int, keep_caps: bool
) -> socket.socket | None:
    """A listening TCP socket created as root (IP_TRANSPARENT before bind), then privileges dropped.

    On failure it emits an `error` event naming the stage that failed and returns None.
    """
    stage = "socket"
    try:
        sock = tcp_socket(bind_addr)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if transparent:
            stage = "IP_TRANSPARENT"
            set_transparent(sock)
        stage = "bind"
        sock.bind((bind_addr, port))
        stage = "listen"
        sock.listen(128)
        stage = "drop_privileges"
        drop_privileges(uid, gid, keep_caps)
    except OSError as exc:
        emit({"event": "error", "stage": stage, "errno": errno_name(exc), "message": str(exc)})
        return None
    return sock


def drop_privileges(uid: int, gid: int, keep_caps: bool) -> None:
    """setgroups([]), setgid(gid), setuid(uid); optionally keep the network capabilities."""
    if uid == 0 and gid == 0:
        return
    if keep_caps:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_KEEPCAPS = 8
        if libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, "prctl(PR_SET_KEEPCAPS): " + os.strerror(code))
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if keep_caps:
        _set_net_caps_effective()


def original_dst(conn: socket.socket) -> tuple[list[Any] | None, str | None]:
    """SO_ORIGINAL_DST (getsockopt(SOL_IP, 80)) parsed as a sockaddr_in; IP6T_SO_ORIGINAL_DST (SOL_IPV6, 80) as a
    sockaddr_in6 for an IPv6 connection (not a v4-mapped one)."""
    peer = conn.getpeername()[0] if conn.family == socket.AF_INET6 else ""
    if conn.family == socket.AF_INET6 and not str(peer).startswith("::ffff:"):
        try:
            raw6 = conn.getsockopt(SOL_IPV6, SO_ORIGINAL_DST, 28)
        except OSError as exc:
            return None, errno_name(exc)
        port6 = struct.unpack_from("!H", raw6, 2)[0]
        return [socket.inet_ntop(socket.AF_INET6, raw6[8:24]), port6], None
    try:
        raw = conn.getsockopt(SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError as exc:
        return None, errno_name(exc)
    family = struct.unpack_from("=H", raw, 0)[0]
    if family != socket.AF_INET:
        return None, f"family={family}"
    port = struct.unpack_from("!H", raw, 2)[0]
    ip = socket.inet_ntoa(raw[4:8])
    return [ip, port], None


def _read_line(conn: socket.socket, limit: int = 65536) -> str:
    buf = b""
    while b"\n" not in buf and len(buf) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace")


def _serve(conn: socket.socket, record: Json) -> None:
    try:
        conn.settimeout(5.0)
        received = _read_line(conn)
        answer = dict(record)
        answer["received"] = received
        conn.sendall((json.dumps(answer, sort_keys=True) + "\n").encode())
        emit({"event": "served", "seq": record["seq"], "listener": record["listener"], "received": received})
    except OSError as exc:
        emit(
            {
                "event": "serve_error",
                "seq": record["seq"],
                "listener": record["listener"],
                "errno": errno_name(exc),
                "message": str(exc),
            }
        )
    finally:
        conn.close()


def cmd_listen(cfg: Json) -> int:
    name = str(cfg["name"])
    port = int(cfg["port"])
    bind_addr = str(cfg.get("addr", "0.0.0.0"))
    transparent = bool(cfg.get("transparent", False))
    uid = int(cfg.get("uid", 0))
    gid = int(cfg.get("gid", 0))
    keep_caps = bool(cfg.get("keep_caps", False))
    sock = open_listener(bind_addr, port, transparent, uid, gid, keep_caps)
    if sock is None:
        return 1
    emit(
        {
            "event": "listening",
            "listener": name,
            "local": addr(sock.getsockname()),
            "pid": os.getpid(),
            "uid": os.getuid(),
            "gid": os.getgid(),
        }
    )
    seq = 0
    while True:
        try:
            conn, peer = sock.accept()
        except OSError as exc:
            emit({"event": "accept_error", "errno": errno_name(exc), "message": str(exc)})
            time.sleep(0.05)
            continue
        seq += 1
        od, od_err = original_dst(conn)
        record: Json = {
            "event": "accepted",
            "seq": seq,
            "listener": name,
            "peer": addr(peer),
            "local": addr(conn.getsockname()),
            "original_dst": od,
            "original_dst_error": od_err,
            "uid": os.getuid(),
        }
        emit(record)
        threading.Thread(target=_serve, args=(conn, record), daemon=True).start()


def cmd_connect(cfg: Json) -> int:
    dst = str(cfg["dst"])
    port = int(cfg["port"])
    src = cfg.get("src")
    sport = cfg.get("sport")
    uid = int(cfg.get("uid", 0))
    gid = int(cfg.get("gid", 0))
    keep_caps = bool(cfg.get("keep_caps", False))
    transparent = bool(cfg.get("transparent", False))
    mark = int(cfg.get("mark", 0))
    timeout = float(cfg.get("timeout", 1.5))
    echo_timeout = float(cfg.get("echo_timeout", timeout))
    payload = str(cfg.get("payload", "hello from meshviz connector"))
    result: Json = {
        "outcome": "error",
        "errno": None,
        "stage": None,
        "message": None,
        "local": None,
        "elapsed": None,
        "server": None,
        "echo_error": None,
    }
    stage = "drop_privileges"
    sock: socket.socket | None = None
    try:
        drop_privileges(uid, gid, keep_caps)
        stage = "socket"
        sock = tcp_socket(dst)
        if mark:
            stage = "SO_MARK"
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        if transparent:
            stage = "IP_TRANSPARENT"
            set_transparent(sock)
        if src is not None or sport is not None:
            stage = "bind"
            sock.bind((str(src) if src is not None else wildcard_of(dst), int(sport or 0)))
    except OSError as exc:
        result.update(outcome="error", errno=errno_name(exc), stage=stage, message=str(exc))
        print(json.dumps(result, sort_keys=True))
        return 0
    assert sock is not None
    stage = "connect"
    sock.settimeout(timeout)
    started = time.monotonic()
    try:
        sock.connect((dst, port))
        result["outcome"] = "connected"
    except TimeoutError as exc:
        result.update(outcome="timeout", errno=errno_name(exc) or "ETIMEDOUT", message=str(exc))
    except ConnectionRefusedError as exc:
        result.update(outcome="refused", errno=errno_name(exc), message=str(exc))
    except OSError as exc:
        unreachable = {errno.EHOSTUNREACH, errno.ENETUNREACH}
        result.update(
            outcome="unreachable" if exc.errno in unreachable else "error", errno=errno_name(exc), message=str(exc)
        )
    result["elapsed"] = round(time.monotonic() - started, 4)
    result["stage"] = stage
    with contextlib.suppress(OSError):
        result["local"] = addr(sock.getsockname())
    if result["outcome"] == "connected":
        try:
            sock.settimeout(echo_timeout)
            sock.sendall((payload + "\n").encode())
            line = _read_line(sock)
            if line:
                result["server"] = json.loads(line)
            else:
                result["echo_error"] = "EOF"
        except (OSError, ValueError) as exc:
            result["echo_error"] = errno_name(exc) or str(exc) or type(exc).__name__
    sock.close()
    print(json.dumps(result, sort_keys=True))
    return 0


def cmd_udp_listen(cfg: Json) -> int:
    name = str(cfg["name"])
    port = int(cfg["port"])
    bind_addr = str(cfg.get("addr", "0.0.0.0"))
    transparent = bool(cfg.get("transparent", False))
    uid = int(cfg.get("uid", 0))
    gid = int(cfg.get("gid", 0))
    keep_caps = bool(cfg.get("keep_caps", False))
    # owner_at_socket: drop to uid/gid before socket(), as a daemon running as that user does (istio-agent's DNS
    # proxy): the socket's owner - what `-m owner` / `meta skuid` see on its answers - is then uid/gid, not root.
    owner_at_socket = bool(cfg.get("owner_at_socket", False))
    stage = "socket"
    try:
        if owner_at_socket:
            stage = "drop_privileges"
            drop_privileges(uid, gid, keep_caps)
            stage = "socket"
        sock = socket.socket(family_of(bind_addr), socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if transparent:
            stage = "IP_TRANSPARENT"
            sock.setsockopt(SOL_IP, IP_TRANSPARENT, 1)
            sock.setsockopt(SOL_IP, IP_RECVORIGDSTADDR, 1)
        stage = "bind"
        sock.bind((bind_addr, port))
        if not owner_at_socket:
            stage = "drop_privileges"
            drop_privileges(uid, gid, keep_caps)
    except OSError as exc:
        emit({"event": "error", "stage": stage, "errno": errno_name(exc), "message": str(exc)})
        return 1
    emit(
        {
            "event": "listening",
            "listener": name,
            "local": addr(sock.getsockname()),
            "pid": os.getpid(),
            "uid": os.getuid(),
            "gid": os.getgid(),
        }
    )
    seq = 0
    while True:
        data, ancdata, _flags, peer = sock.recvmsg(65536, 1024)
        seq += 1
        od: list[Any] | None = None
        for level, kind, value in ancdata:
            if level == SOL_IP and kind == IP_RECVORIGDSTADDR and len(value) >= 8:
                od = [socket.inet_ntoa(value[4:8]), struct.unpack_from("!H", value, 2)[0]]
        record: Json = {
            "event": "accepted",
            "seq": seq,
            "listener": name,
            "peer": addr(peer),
            "local": addr(sock.getsockname()),
            "original_dst": od,
            "original_dst_error": None if od is not None else "none",
            "uid": os.getuid(),
            "received": data.decode("utf-8", "replace").rstrip("\n"),
        }
        emit(record)
        try:
            sock.sendto((json.dumps(record, sort_keys=True) + "\n").encode(), peer)
        except OSError as exc:
            emit({"event": "serve_error", "seq": seq, "listener": name, "errno": errno_name(exc), "message": str(exc)})


def cmd_udp_send(cfg: Json) -> int:
    dst = str(cfg["dst"])
    port = int(cfg["port"])
    src = cfg.get("src")
    sport = cfg.get("sport")
    uid = int(cfg.get("uid", 0))
    gid = int(cfg.get("gid", 0))
    timeout = float(cfg.get("timeout", 1.5))
    payload = str(cfg.get("payload", "hello from meshviz udp sender"))
    result: Json = {
        "outcome": "error",
        "errno": None,
        "stage": None,
        "message": None,
        "local": None,
        "elapsed": None,
        "server": None,
        "echo_error": None,
    }
    stage = "drop_privileges"
    started = time.monotonic()
    try:
        drop_privileges(uid, gid, False)
        stage = "socket"
        sock = socket.socket(family_of(dst), socket.SOCK_DGRAM)
        if src is not None or sport is not None:
            stage = "bind"
            wildcard = "::" if family_of(dst) == socket.AF_INET6 else "0.0.0.0"
            sock.bind((str(src) if src is not None else wildcard, int(sport or 0)))
        stage = "connect"
        sock.connect((dst, port))
        result["local"] = addr(sock.getsockname())
        stage = "send"
        sock.settimeout(timeout)
        sock.send((payload + "\n").encode())
        stage = "recv"
        data, peer = sock.recvfrom(65536)
        result["reply_from"] = addr(peer)  # where the answer came from, as the connected socket sees it
        result["server"] = json.loads(data.decode())
        result["outcome"] = "connected"
    except TimeoutError as exc:
        result.update(outcome="timeout", errno=errno_name(exc) or "ETIMEDOUT", message=str(exc))
    except ConnectionRefusedError as exc:
        result.update(outcome="refused", errno=errno_name(exc), message=str(exc))
    except OSError as exc:
        unreachable = {errno.EHOSTUNREACH, errno.ENETUNREACH}
        result.update(
            outcome="unreachable" if exc.errno in unreachable else "error", errno=errno_name(exc), message=str(exc)
        )
    result["stage"] = stage
    result["elapsed"] = round(time.monotonic() - started, 4)
    print(json.dumps(result, sort_keys=True))
    return 0


# --------------------------------------------------------------------------- sidecar (Envoy inbound)

#: Prefix of every line the sidecar relays from its upstream; an error line starts with PROXY-ERROR.
VIA_PROXY = "VIA-PROXY"
PROXY_ERROR = "PROXY-ERROR"


def _parse_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def upstream_target(spec: str, orig: list[Any] | None) -> tuple[str, int] | None:
    """Where the sidecar sends a connection: ``original_dst``, ``HOST:PORT`` or
    ``original_port_on:HOST`` (HOST with the original destination's port).
    None when the spec needs an original destination the kernel did not give."""
    if spec == "original_dst":
        return (str(orig[0]), int(orig[1])) if orig is not None else None
    if spec.startswith("original_port_on:"):
        return (spec.split(":", 1)[1], int(orig[1])) if orig is not None else None
    return _parse_hostport(spec)


class _Sidecar:
    """Envoy's inbound path as the kernel sees it: accept, original destination, one upstream.

    Loops are detected by address: every upstream socket's local address is
    registered (under ``lock``) between the non-blocking ``connect`` that sends
    its SYN and the wait for the handshake, so an accepted connection whose
    peer is one of them is one of our own upstream connections coming back.
    """

    def __init__(self, cfg: Json) -> None:
        self.name = str(cfg.get("name", "envoy"))
        self.orig_dst_method = str(cfg.get("orig_dst", "so_original_dst"))
        self.target_spec = str(cfg.get("upstream_target", "original_dst"))
        bind = cfg.get("upstream_bind")
        self.bind = None if bind is None else str(bind)
        self.up_transparent = bool(cfg.get("upstream_transparent", False))
        self.up_mark = int(cfg.get("upstream_mark", 0))
        self.up_timeout = float(cfg.get("upstream_timeout", 1.5))
        self.io_timeout = float(cfg.get("io_timeout", 3.0))
        self.max_inflight = int(cfg.get("max_inflight", 8))
        self.lock = threading.Lock()
        self.inflight: dict[tuple[str, int], int] = {}  # upstream local address -> downstream seq
        self.active = 0

    # -- events
    def accepted(self, conn: socket.socket, peer: Any, seq: int) -> Json:
        if self.orig_dst_method == "getsockname":
            od: list[Any] | None = addr(conn.getsockname())
            od_err = None
        else:
            od, od_err = original_dst(conn)
        record: Json = {
            "event": "accepted",
            "sidecar": self.name,
            "seq": seq,
            "peer": addr(peer),
            "local": addr(conn.getsockname()),
            "original_dst": od,
            "original_dst_error": od_err,
            "orig_dst_method": self.orig_dst_method,
            "uid": os.getuid(),
            "gid": os.getgid(),
        }
        emit(record)
        return record

    # -- per connection
    def serve_loop(self, conn: socket.socket, record: Json, upstream_seq: int) -> None:
        emit(
            {
                "event": "loop",
                "sidecar": self.name,
                "seq": record["seq"],
                "peer": record["peer"],
                "upstream_of": upstream_seq,
            }
        )
        self._answer(conn, f"{PROXY_ERROR} LOOP")

    def _answer(self, conn: socket.socket, line: str) -> None:
        """Read the downstream's line (so closing sends FIN, not RST), answer one line, close."""
        try:
            conn.settimeout(min(self.io_timeout, 1.0))
            with contextlib.suppress(OSError):
                _read_line(conn)
            conn.sendall((line + "\n").encode())
        except OSError:
            pass
        finally:
            conn.close()

    def serve(self, conn: socket.socket, record: Json) -> None:
        seq = int(record["seq"])
        try:
            target = upstream_target(self.target_spec, record["original_dst"])
            if target is None:
                emit(
                    {
                        "event": "upstream",
                        "sidecar": self.name,
                        "seq": seq,
                        "target": None,
                        "outcome": "error",
                        "stage": "original_dst",
                        "errno": record["original_dst_error"],
                    }
                )
                self._answer(conn, f"{PROXY_ERROR} NR {record['original_dst_error']}")
                return
            up, result, key = self.connect_upstream(seq, target, record)
            emit(result)
            if up is None:
                self._answer(conn, f"{PROXY_ERROR} UF {result['errno']}")
                return
            try:
                self.relay(conn, up, seq)
            finally:
                up.close()
                self._unregister(key)
        finally:
            with self.lock:
                self.active -= 1

    def _unregister(self, key: tuple[str, int] | None) -> None:
        if key is not None:
            with self.lock:
                self.inflight.pop(key, None)

    def connect_upstream(
        self, seq: int, target: tuple[str, int], record: Json
    ) -> tuple[socket.socket | None, Json, tuple[str, int] | None]:
        """Create, set up, bind and connect the upstream socket; (socket or None, event, registered key)."""
        bind: tuple[str, int] | None = None
        if self.bind == "downstream_src":
            bind = (str(record["peer"][0]), 0)
        elif self.bind is not None:
            bind = (self.bind, 0)
        result: Json = {
            "event": "upstream",
            "sidecar": self.name,
            "seq": seq,
            "target": [target[0], target[1]],
            "bind": None if bind is None else [bind[0], bind[1]],
            "mark": self.up_mark,
            "transparent": self.up_transparent,
            "outcome": "error",
            "errno": None,
            "stage": "socket",
            "upstream_local": None,
            "elapsed": None,
        }
        sock: socket.socket | None = None
        key: tuple[str, int] | None = None
        started: float | None = None
        try:
            for _attempt in range(8):
                sock = tcp_socket(target[0])
                if self.up_transparent:
                    result["stage"] = "IP_TRANSPARENT"
                    set_transparent(sock)
                if self.up_mark:
                    result["stage"] = "SO_MARK"
                    sock.setsockopt(socket.SOL_SOCKET, SO_MARK, self.up_mark)
                if bind is None:
                    break
                # Port 0, allocated by bind() as Envoy's upstream bind did (no
                # IP_BIND_ADDRESS_NO_PORT).  Bound to the downstream's address, the kernel
                # cannot know the downstream's port (chosen in another namespace): taking
                # it would give the upstream the downstream's 4-tuple (same conntrack
                # entry).  Envoy does not guard against that rare clash; the stand-in
                # does, so tests stay deterministic.
                result["stage"] = "bind"
                sock.bind(bind)
                if self.bind != "downstream_src" or sock.getsockname()[1] != int(record["peer"][1]):
                    break
                result["bind_retries"] = result.get("bind_retries", 0) + 1
                sock.close()
            assert sock is not None
            result["stage"] = "connect"
            sock.setblocking(False)
            started = time.monotonic()
            with self.lock:  # the accept loop waits here: register before anything can be accepted
                rc = sock.connect_ex(target)
                with contextlib.suppress(OSError):
                    local = sock.getsockname()
                    result["upstream_local"] = addr(local)
                    if local[1]:
                        norm = addr(local)
                        key = (str(norm[0]), int(norm[1]))
                        self.inflight[key] = seq
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, os.strerror(rc))
            if rc == errno.EINPROGRESS:
                _readable, writable, _errored = select.select([], [sock], [], self.up_timeout)
                if not writable:
                    raise TimeoutError(errno.ETIMEDOUT, "upstream connect timed out")
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
            result["elapsed"] = round(time.monotonic() - started, 4)
            result["outcome"] = "connected"
            sock.setblocking(True)
            return sock, result, key
        except OSError as exc:
            if started is not None:
                result["elapsed"] = round(time.monotonic() - started, 4)
            result["outcome"] = _outcome_of(exc)
            result["errno"] = errno_name(exc) or "ETIMEDOUT"
            result["message"] = str(exc)
            if sock is not None:
                sock.close()
            self._unregister(key)
            return None, result, None

    def relay(self, conn: socket.socket, up: socket.socket, seq: int) -> None:
        event: Json = {"event": "relayed", "sidecar": self.name, "seq": seq, "error": None}
        stage = "setup"
        try:
            conn.settimeout(self.io_timeout)
            up.settimeout(self.io_timeout)
            stage = "downstream_read"
            request = _read_line(conn)
            event["request"] = request
            stage = "upstream_write"
            up.sendall((request + "\n").encode())
            stage = "upstream_read"
            reply = _read_line(up)
            event["reply"] = reply
            if reply:
                line = f"{VIA_PROXY} {self.name} {reply}"
            else:
                event["error"] = "upstream_read:EOF"
                line = f"{PROXY_ERROR} UC EOF"
            stage = "downstream_write"
            conn.sendall((line + "\n").encode())
        except OSError as exc:
            event["error"] = f"{stage}:{errno_name(exc) or type(exc).__name__}"
            if stage == "upstream_read":
                with contextlib.suppress(OSError):
                    conn.sendall(f"{PROXY_ERROR} UC {errno_name(exc)}\n".encode())
        finally:
            conn.close()
            emit(event)


def _outcome_of(exc: OSError) -> str:
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "timeout"
    if exc.errno == errno.ECONNREFUSED:
        return "refused"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "error"


def cmd_sidecar(cfg: Json) -> int:
    """A stand-in Envoy inbound listener (see _Sidecar); one JSON event per step on stdout."""
    sidecar = _Sidecar(cfg)
    port = int(cfg.get("port", 15006))
    bind_addr = str(cfg.get("addr", "0.0.0.0"))
    transparent = bool(cfg.get("transparent", False))
    uid = int(cfg.get("uid", 1337))
    gid = int(cfg.get("gid", 1337))
    keep_caps = bool(cfg.get("keep_caps", True))
    # uid 0 stays root (all capabilities), whatever keep_caps says.
    sock = open_listener(bind_addr, port, transparent, uid, gid, keep_caps and uid != 0)
    if sock is None:
        return 1
    emit(
        {
            "event": "listening",
            "sidecar": sidecar.name,
            "local": addr(sock.getsockname()),
            "pid": os.getpid(),
            "uid": os.getuid(),
            "gid": os.getgid(),
        }
    )
    seq = 0
    while True:
        try:
            conn, peer = sock.accept()
        except OSError as exc:
            emit({"event": "accept_error", "errno": errno_name(exc), "message": str(exc)})
            time.sleep(0.05)
            continue
        seq += 1
        record = sidecar.accepted(conn, peer, seq)
        # Taking the lock waits for an upstream connect() in progress to register its address.
        with sidecar.lock:
            norm = addr(peer)
            upstream_seq = sidecar.inflight.get((str(norm[0]), int(norm[1])))
            overflow = upstream_seq is None and sidecar.active >= sidecar.max_inflight
            if upstream_seq is None and not overflow:
                sidecar.active += 1
        if upstream_seq is not None:
            threading.Thread(target=sidecar.serve_loop, args=(conn, record, upstream_seq), daemon=True).start()
        elif overflow:
            emit({"event": "overflow", "sidecar": sidecar.name, "seq": seq, "active": sidecar.active})
            threading.Thread(target=sidecar._answer, args=(conn, f"{PROXY_ERROR} OVERFLOW"), daemon=True).start()
        else:
            threading.Thread(target=sidecar.serve, args=(conn, record), daemon=True).start()


def cmd_request(cfg: Json) -> int:
    """One end-to-end request: connect, send a line, read one line back (whatever it is)."""
    dst = str(cfg["dst"])
    port = int(cfg["port"])
    src = cfg.get("src")
    sport = cfg.get("sport")
    timeout = float(cfg.get("timeout", 3.0))
    payload = str(cfg.get("payload", "hello from meshviz client"))
    result: Json = {
        "outcome": "error",
        "errno": None,
        "stage": "socket",
        "message": None,
        "local": None,
        "elapsed": None,
        "response": None,
        "read_error": None,
    }
    started = time.monotonic()
    buf = b""
    sock = tcp_socket(dst)
    try:
        if src is not None or sport is not None:
            result["stage"] = "bind"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((str(src) if src is not None else wildcard_of(dst), int(sport or 0)))
        result["stage"] = "connect"
        sock.settimeout(timeout)
        sock.connect((dst, port))
        result["outcome"] = "connected"
    except OSError as exc:
        result.update(outcome=_outcome_of(exc), errno=errno_name(exc) or "ETIMEDOUT", message=str(exc))
    result["elapsed"] = round(time.monotonic() - started, 4)
    with contextlib.suppress(OSError):
        result["local"] = addr(sock.getsockname())
    if result["outcome"] == "connected":
        try:
            remaining = max(0.05, timeout - (time.monotonic() - started))
            sock.settimeout(remaining)
            sock.sendall((payload + "\n").encode())
            while b"\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
            if buf:
                result["response"] = buf.split(b"\n", 1)[0].decode("utf-8", "replace")
            else:
                result["read_error"] = "EOF"
        except OSError as exc:
            result["read_error"] = errno_name(exc) or ("ETIMEDOUT" if isinstance(exc, TimeoutError) else str(exc))
            if buf:
                result["response"] = buf.decode("utf-8", "replace")
    result["total_elapsed"] = round(time.monotonic() - started, 4)
    sock.close()
    print(json.dumps(result, sort_keys=True))
    return 0


COMMANDS = {
    "listen": cmd_listen,
    "connect": cmd_connect,
    "udp-listen": cmd_udp_listen,
    "udp-send": cmd_udp_send,
    "sidecar": cmd_sidecar,
    "request": cmd_request,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in COMMANDS:
        commands = ",".join(sorted(COMMANDS))
        sys.stderr.write(f"usage: standins.py {{{commands}}} JSON\n")
        return 2
    return COMMANDS[argv[1]](json.loads(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
