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
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import struct
import sys
import threading
import time
from typing import Any

SOL_IP = 0
IP_TRANSPARENT = 19
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
    return [sockaddr[0], sockaddr[1]]


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
    """SO_ORIGINAL_DST (getsockopt(SOL_IP, 80)) parsed as a sockaddr_in."""
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
    stage = "socket"
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if transparent:
            stage = "IP_TRANSPARENT"
            sock.setsockopt(SOL_IP, IP_TRANSPARENT, 1)
        stage = "bind"
        sock.bind((bind_addr, port))
        stage = "listen"
        sock.listen(128)
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
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if mark:
            stage = "SO_MARK"
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        if transparent:
            stage = "IP_TRANSPARENT"
            sock.setsockopt(SOL_IP, IP_TRANSPARENT, 1)
        if src is not None or sport is not None:
            stage = "bind"
            sock.bind((str(src) if src is not None else "0.0.0.0", int(sport or 0)))
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
    stage = "socket"
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if transparent:
            stage = "IP_TRANSPARENT"
            sock.setsockopt(SOL_IP, IP_TRANSPARENT, 1)
            sock.setsockopt(SOL_IP, IP_RECVORIGDSTADDR, 1)
        stage = "bind"
        sock.bind((bind_addr, port))
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
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if src is not None or sport is not None:
            stage = "bind"
            sock.bind((str(src) if src is not None else "0.0.0.0", int(sport or 0)))
        stage = "connect"
        sock.connect((dst, port))
        result["local"] = addr(sock.getsockname())
        stage = "send"
        sock.settimeout(timeout)
        sock.send((payload + "\n").encode())
        stage = "recv"
        data = sock.recv(65536)
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


COMMANDS = {
    "listen": cmd_listen,
    "connect": cmd_connect,
    "udp-listen": cmd_udp_listen,
    "udp-send": cmd_udp_send,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in COMMANDS:
        commands = ",".join(sorted(COMMANDS))
        sys.stderr.write(f"usage: standins.py {{{commands}}} JSON\n")
        return 2
    return COMMANDS[argv[1]](json.loads(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
