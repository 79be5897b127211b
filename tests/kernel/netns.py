"""Kernel test harness: a client and a pod network namespace joined by a veth pair.

Topology (see docs/kernel-tests.md)::

    netns <client>                         netns <pod>
    eth0 10.80.0.1/24, 10.80.1.1/24  <-->  eth0 10.80.0.10/24
    default via 10.80.0.10                 default via 10.80.0.1

``PodNet`` builds it, loads iptables rules / policy routes / sysctls into the pod,
runs stand-in listeners (tests/kernel/standins.py) and one-shot connectors, and
tears everything down (processes first, then both namespaces), even on failure.

Everything here shells out to ``ip``, ``sysctl`` and ``iptables-*-restore``;
nothing in the test process itself changes namespace.  Only addresses inside
the namespaces created here are ever dialled.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Backend = Literal["legacy", "nft"]
Side = Literal["pod", "client"]
Outcome = Literal["connected", "refused", "timeout", "unreachable", "error"]
SockAddr = tuple[str, int]

BACKENDS: tuple[Backend, ...] = ("legacy", "nft")
DEFAULT_BACKEND: Backend = "nft"

NS_PREFIX = "mvz"
STANDINS = Path(__file__).with_name("standins.py")

CLIENT_IP = "10.80.0.1"
POD_IP = "10.80.0.10"
CLIENT_IP2 = "10.80.1.1"
PREFIX_LEN = 24
IFACE = "eth0"

CLIENT_IP6 = "fd00:80::1"
POD_IP6 = "fd00:80::10"
PREFIX_LEN6 = 64


def pod_sysctl_defaults(iface: str = IFACE) -> tuple[tuple[str, str], ...]:
    """Sysctls written in the pod namespace at setup, in this order, so tests are
    deterministic whatever the host's defaults are."""
    return (
        ("net.ipv4.ip_forward", "0"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        (f"net.ipv4.conf.{iface}.rp_filter", "0"),
        ("net.ipv4.conf.all.route_localnet", "0"),
        ("net.ipv4.conf.default.route_localnet", "0"),
        (f"net.ipv4.conf.{iface}.route_localnet", "0"),
        ("net.ipv4.conf.lo.route_localnet", "0"),
        ("net.ipv4.tcp_fwmark_accept", "0"),
    )


def client_sysctl_defaults(iface: str = IFACE) -> tuple[tuple[str, str], ...]:
    return (
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        (f"net.ipv4.conf.{iface}.rp_filter", "0"),
    )


POD_SYSCTL_DEFAULTS = pod_sysctl_defaults()
CLIENT_SYSCTL_DEFAULTS = client_sysctl_defaults()

_counter = itertools.count(1)
_live: set[PodNet] = set()
_live_lock = threading.Lock()


class HarnessError(RuntimeError):
    """A harness command failed (setup, ip, sysctl, iptables-restore, stand-in start)."""


def _run(
    args: Sequence[str], input: str | None = None, check: bool = True, timeout: float = 15.0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise HarnessError(
            f"command failed (rc={proc.returncode}): {' '.join(args)}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc


@functools.lru_cache(maxsize=1)
def netns_available() -> tuple[bool, str]:
    """Can this machine run the kernel tests?  Returns (ok, reason-when-not)."""
    if not sys.platform.startswith("linux"):
        return False, f"network namespaces need Linux (platform is {sys.platform})"
    if os.geteuid() != 0:
        return False, "kernel tests need root (CAP_SYS_ADMIN/CAP_NET_ADMIN) to create namespaces"
    if shutil.which("ip") is None:
        return False, "the `ip` command (iproute2) is not installed"
    if shutil.which("sysctl") is None:
        return False, "the `sysctl` command (procps) is not installed"
    if not any(shutil.which(tool) for tool in ("iptables-restore", "iptables-nft-restore", "iptables-legacy-restore")):
        return False, "iptables-restore is not installed (apt-get install iptables)"
    name = f"{NS_PREFIX}probe{os.getpid()}"
    try:
        add = _run(["ip", "netns", "add", name], check=False, timeout=10)
        if add.returncode != 0:
            return False, f"cannot create a network namespace: {add.stderr.strip()}"
        delete = _run(["ip", "netns", "delete", name], check=False, timeout=10)
        if delete.returncode != 0:
            return False, f"cannot delete a network namespace: {delete.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"cannot create a network namespace: {exc}"
    return True, ""


def restore_command(backend: Backend | None) -> str:
    """The iptables-restore binary for a backend (None: the system's `iptables-restore`)."""
    return "iptables-restore" if backend is None else f"iptables-{backend}-restore"


def save_command(backend: Backend | None) -> str:
    return "iptables-save" if backend is None else f"iptables-{backend}-save"


def backend_available(backend: Backend) -> tuple[bool, str]:
    for tool in (restore_command(backend), save_command(backend), f"iptables-{backend}"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (iptables backend {backend!r})"
    return True, ""


def restore_text(table: str, *rules: str, chains: Iterable[str] = ()) -> str:
    """iptables-restore text for one table: ``*table``, custom `chains`, `rules`, ``COMMIT``.

    >>> restore_text("nat", "-A PREROUTING -p tcp -j REDIRECT --to-ports 15006")
    '*nat\\n-A PREROUTING -p tcp -j REDIRECT --to-ports 15006\\nCOMMIT\\n'

    Built-in chains need no declaration; custom chains are declared ``:NAME - [0:0]``.
    """
    lines = [f"*{table}", *(f":{chain} - [0:0]" for chain in chains), *rules, "COMMIT"]
    return "\n".join(lines) + "\n"


def _pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a killed orphan may wait a while to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def cleanup_stale_namespaces() -> list[str]:
    """Delete namespaces left by *dead* harness runs (their name carries the dead pid).

    Only names made by this harness (``mvz<pid>x<n>c|p``) whose pid no longer
    exists are touched; returns the deleted names.
    """
    proc = _run(["ip", "netns", "list"], check=False)
    deleted: list[str] = []
    for line in proc.stdout.splitlines():
        name = line.split(" ", 1)[0]
        if not name.startswith(NS_PREFIX) or "x" not in name:
            continue
        pid_text = name[len(NS_PREFIX) :].split("x", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        if _run(["ip", "netns", "delete", name], check=False).returncode == 0:
            deleted.append(name)
    return deleted


def _addr(value: Any) -> SockAddr | None:
    if value is None:
        return None
    return (str(value[0]), int(value[1]))


@dataclass(frozen=True)
class Accepted:
    """One connection accepted by a stand-in listener, as the application saw it."""

    listener: str
    peer: SockAddr  # getpeername(): who the app thinks the client is
    local: SockAddr  # getsockname(): the address the app's socket is bound to
    original_dst: SockAddr | None  # SO_ORIGINAL_DST, None when the kernel has none
    original_dst_error: str | None  # errno name when SO_ORIGINAL_DST failed (e.g. ENOENT)
    uid: int  # the listener's uid when it accepted
    seq: int

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Accepted:
        peer = _addr(obj["peer"])
        local = _addr(obj["local"])
        assert peer is not None and local is not None
        return cls(
            listener=str(obj["listener"]),
            peer=peer,
            local=local,
            original_dst=_addr(obj.get("original_dst")),
            original_dst_error=obj.get("original_dst_error"),
            uid=int(obj.get("uid", 0)),
            seq=int(obj.get("seq", 0)),
        )


@dataclass(frozen=True)
class ConnectResult:
    """The outcome of one connection attempt made by the connector stand-in."""

    outcome: Outcome
    errno: str | None  # e.g. "ECONNREFUSED", "EPERM"; None when connected
    stage: str | None  # where it ended: drop_privileges, socket, SO_MARK, IP_TRANSPARENT, bind, connect
    message: str | None
    local: SockAddr | None  # getsockname() of the connecting socket (also after a timeout)
    elapsed: float | None  # seconds spent in connect()
    listener: str | None  # name of the stand-in listener that answered
    peer_seen_by_server: SockAddr | None  # getpeername() on the server side
    server_local: SockAddr | None  # getsockname() on the server side
    server_original_dst: SockAddr | None  # SO_ORIGINAL_DST on the server side
    echo_error: str | None  # set when connected but no echo came back
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def connected(self) -> bool:
        return self.outcome == "connected"

    @property
    def echoed(self) -> bool:
        """Connected *and* the data round trip through the server worked."""
        return self.connected and self.listener is not None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ConnectResult:
        server = obj.get("server") or {}
        return cls(
            outcome=obj["outcome"],
            errno=obj.get("errno"),
            stage=obj.get("stage"),
            message=obj.get("message"),
            local=_addr(obj.get("local")),
            elapsed=obj.get("elapsed"),
            listener=server.get("listener"),
            peer_seen_by_server=_addr(server.get("peer")),
            server_local=_addr(server.get("local")),
            server_original_dst=_addr(server.get("original_dst")),
            echo_error=obj.get("echo_error"),
            raw=obj,
        )


class _StandinProcess:
    """A long-lived stand-in (listener) whose JSON-line stdout is read by a thread."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.events: list[dict[str, Any]] = []
        self.log: list[str] = []
        self.eof = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _reader(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            with self.cond:
                if isinstance(event, dict):
                    self.events.append(event)
                else:
                    self.log.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, kinds: Iterable[str], count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until `count` events of the given kinds exist (or EOF/timeout); return them."""
        wanted = set(kinds)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [e for e in self.events if e.get("event") in wanted]
                remaining = deadline - time.monotonic()
                if len(found) >= count or self.eof or remaining <= 0:
                    return found
                self.cond.wait(remaining)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a stuck kernel: give up waiting
            self.proc.wait(timeout=5)
        self.thread.join(timeout=2)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Listener:
    """A stand-in server socket in one namespace; see PodNet.listen."""

    def __init__(
        self,
        name: str,
        port: int,
        addr: str,
        transparent: bool,
        uid: int,
        gid: int,
        side: Side,
        proto: Literal["tcp", "udp"],
        process: _StandinProcess,
    ) -> None:
        self.name = name
        self.port = port
        self.addr = addr
        self.transparent = transparent
        self.uid = uid
        self.gid = gid
        self.side = side
        self.proto = proto
        self._process = process

    def __repr__(self) -> str:
        return (
            f"Listener({self.name!r}, {self.proto} {self.addr}:{self.port}, side={self.side}, "
            f"transparent={self.transparent}, uid={self.uid}, pid={self.pid})"
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.proc.poll() is None

    def accepted(self, timeout: float = 0.0, count: int = 1) -> list[Accepted]:
        """Every connection accepted so far, waiting up to `timeout` s for at least `count`.

        With the default timeout 0 it returns at once; a connector's result is
        only printed after the listener logged the accept, so
        ``accepted(timeout=1)`` after a successful connect returns immediately.
        """
        events = self._process.wait_for(["accepted"], count=count, timeout=timeout)
        return [Accepted.from_json(e) for e in events]

    def log(self) -> list[str]:
        """Non-JSON output (tracebacks) of the stand-in process."""
        with self._process.cond:
            return list(self._process.log)

    def close(self) -> None:
        self._process.stop()


# --------------------------------------------------------------------------- sidecar stand-in

#: What a sidecar prefixes to a reply it relayed from its upstream, and how its own errors start.
VIA_PROXY = "VIA-PROXY"
PROXY_ERROR = "PROXY-ERROR"

SIDECAR_EVENTS = ("accepted", "upstream", "relayed", "loop", "overflow", "accept_error")


class Sidecar:
    """A stand-in Envoy inbound listener in the pod; see PodNet.sidecar.

    Its process prints one JSON event per step; ``events()`` returns them as dicts:

    * ``accepted``: seq, peer, local, original_dst, original_dst_error, orig_dst_method, uid, gid
    * ``upstream``: seq, target, bind, mark, transparent, outcome (connected | refused | timeout |
      unreachable | error), errno, stage, upstream_local, elapsed
    * ``relayed``: seq, request, reply (the upstream's line), error
    * ``loop``: seq, peer, upstream_of (the seq whose upstream connection came back)
    * ``overflow``: more than max_inflight connections in progress
    """

    def __init__(self, name: str, port: int, addr: str, config: Mapping[str, Any], process: _StandinProcess) -> None:
        self.name = name
        self.port = port
        self.addr = addr
        self.config = dict(config)
        self._process = process

    def __repr__(self) -> str:
        return f"Sidecar({self.name!r}, {self.addr}:{self.port}, pid={self.pid}, config={self.config})"

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.proc.poll() is None

    def events(
        self, timeout: float = 0.0, kinds: Iterable[str] | str | None = None, count: int = 1
    ) -> list[dict[str, Any]]:
        """Events so far (all, or only `kinds`), waiting up to `timeout` s until at least `count` exist."""
        if isinstance(kinds, str):
            kinds = [kinds]
        wanted = set(kinds) if kinds is not None else None
        deadline = time.monotonic() + timeout
        process = self._process
        with process.cond:
            while True:
                found = [
                    dict(e)
                    for e in process.events
                    if e.get("event") != "listening" and (wanted is None or e.get("event") in wanted)
                ]
                remaining = deadline - time.monotonic()
                if len(found) >= count or process.eof or remaining <= 0:
                    return found
                process.cond.wait(remaining)

    def accepted(self, timeout: float = 0.0, count: int = 1) -> list[dict[str, Any]]:
        return self.events(timeout, "accepted", count)

    def upstreams(self, timeout: float = 0.0, count: int = 1) -> list[dict[str, Any]]:
        return self.events(timeout, "upstream", count)

    def loops(self, timeout: float = 0.0, count: int = 1) -> list[dict[str, Any]]:
        return self.events(timeout, "loop", count)

    def log(self) -> list[str]:
        """Non-JSON output (tracebacks) of the stand-in process."""
        with self._process.cond:
            return list(self._process.log)

    def close(self) -> None:
        self._process.stop()


@dataclass(frozen=True)
class E2EResult:
    """One request from the client namespace, through whatever the pod does with it.

    ``response`` is the raw first line the client got back.  A line relayed by a
    sidecar starts with ``VIA-PROXY <name> `` (once per sidecar hop); a sidecar's
    own error is ``PROXY-ERROR <code> [<errno>]`` (UF: upstream connect failure,
    Envoy's 503 UF; LOOP: the sidecar accepted its own upstream connection; UC:
    the upstream closed; NR: no original destination).  What remains after the
    prefixes is the application's JSON echo, parsed into ``app``/``app_peer``.
    """

    client_connected: bool
    outcome: Outcome  # of the client's connect(): connected | refused | timeout | unreachable | error
    errno: str | None  # of the client's connect()
    local: SockAddr | None  # the client's socket
    response: str | None  # the first line the client received, None when none came
    read_error: str | None  # EOF, ETIMEDOUT, ECONNRESET... when no full line came back
    via_proxy: bool  # the response came from (or through) a sidecar
    proxy_hops: tuple[str, ...]  # names of the sidecars that relayed it, outermost first
    proxy_error: str | None  # UF, LOOP, UC, NR, OVERFLOW
    proxy_errno: str | None  # e.g. ETIMEDOUT for "PROXY-ERROR UF ETIMEDOUT"
    app: Mapping[str, Any] | None  # the application's echo (listener, peer, local, original_dst, received)
    app_peer: SockAddr | None  # the peer the application reported: who it thinks the client is
    app_listener: str | None
    elapsed: float | None  # seconds in connect()
    total_elapsed: float | None  # seconds for the whole request
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """The application answered (directly or through a proxy)."""
        return self.app is not None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> E2EResult:
        response = obj.get("response")
        hops: list[str] = []
        proxy_error = proxy_errno = None
        app: dict[str, Any] | None = None
        rest = response
        while rest is not None and rest.startswith(VIA_PROXY + " "):
            _, name, rest = [*rest.split(" ", 2), ""][:3]
            hops.append(name)
        if rest is not None and rest.startswith(PROXY_ERROR):
            words = rest.split()
            proxy_error = words[1] if len(words) > 1 else ""
            proxy_errno = words[2] if len(words) > 2 else None
        elif rest:
            try:
                parsed = json.loads(rest)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                app = parsed
        return cls(
            client_connected=obj.get("outcome") == "connected",
            outcome=obj["outcome"],
            errno=obj.get("errno"),
            local=_addr(obj.get("local")),
            response=response,
            read_error=obj.get("read_error"),
            via_proxy=bool(hops) or proxy_error is not None,
            proxy_hops=tuple(hops),
            proxy_error=proxy_error,
            proxy_errno=proxy_errno,
            app=app,
            app_peer=_addr(app.get("peer")) if app else None,
            app_listener=str(app["listener"]) if app and "listener" in app else None,
            elapsed=obj.get("elapsed"),
            total_elapsed=obj.get("total_elapsed"),
            raw=obj,
        )


class PodNet:
    """A client namespace and a pod namespace joined by veth `eth0` <-> `eth0`.

    Use as a context manager; teardown kills every process started here (and
    any other process still inside the two namespaces), then deletes both
    namespaces, even when the body raised.
    """

    client_ip: str = CLIENT_IP
    pod_ip: str = POD_IP
    client_ip2: str = CLIENT_IP2
    iface: str = IFACE

    def __init__(
        self,
        backend: Backend = DEFAULT_BACKEND,
        *,
        second_client_net: bool = True,
        python: str | None = None,
        iface: str = IFACE,
        ipv6: bool = False,
        ipv4: bool = True,
        extra_iface: str | None = None,
    ) -> None:
        """`iface` names the pod's veth end (real pods: eth0, ens4, net1, vethXXXX); `ipv6` adds the IPv6 pair
        (fd00:80::1 / fd00:80::10, nodad) and Istio's `::6` on lo; `ipv4=False` leaves IPv4 out (an IPv6-only
        pod); `extra_iface` adds a second pod interface (a dummy with 10.81.0.10/24 and fd00:81::10/64, no peer:
        what leaves through it is counted and lost)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.backend: Backend = backend
        self.second_client_net = second_client_net
        self.python = python or sys.executable
        self.iface = iface
        self.ipv6 = ipv6
        self.ipv4 = ipv4
        self.extra_iface = extra_iface
        n = next(_counter)
        base = f"{NS_PREFIX}{os.getpid()}x{n}"
        self.client_ns = base + "c"
        self.sink_ns = base + "x"
        self.pod_ns = base + "p"
        self._processes: list[_StandinProcess] = []
        self._created: list[str] = []
        self._closed = False
        self.setup_seconds: float | None = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> PodNet:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def setup(self) -> None:
        started = time.monotonic()
        with _live_lock:
            _live.add(self)
        for ns in (self.client_ns, self.pod_ns):
            _run(["ip", "netns", "add", ns])
            self._created.append(ns)
        # The veth pair is created inside the client namespace with its peer
        # placed directly in the pod namespace, so both ends can be called eth0
        # without ever existing (or clashing) in the host namespace.
        # The client side's end is always eth0; the pod's end carries the pod's interface name.
        client_cmds = [f"link add {IFACE} type veth peer name {self.iface} netns {self.pod_ns}"]
        if self.ipv4:
            client_cmds.append(f"addr add {CLIENT_IP}/{PREFIX_LEN} dev {IFACE}")
            if self.second_client_net:
                client_cmds.append(f"addr add {CLIENT_IP2}/{PREFIX_LEN} dev {IFACE}")
        if self.ipv6:
            client_cmds.append(f"addr add {CLIENT_IP6}/{PREFIX_LEN6} dev {IFACE} nodad")
        client_cmds += ["link set lo up", f"link set {IFACE} up"]
        if self.ipv4:
            client_cmds.append(f"route add default via {POD_IP} dev {IFACE}")
        if self.ipv6:
            client_cmds.append(f"route add default via {POD_IP6} dev {IFACE}")
        _run(["ip", "-n", self.client_ns, "-batch", "-"], input="\n".join(client_cmds) + "\n")
        pod_cmds: list[str] = []
        if self.ipv4:
            pod_cmds.append(f"addr add {POD_IP}/{PREFIX_LEN} dev {self.iface}")
        if self.ipv6:
            pod_cmds += [f"addr add {POD_IP6}/{PREFIX_LEN6} dev {self.iface} nodad", "addr add ::6/128 dev lo nodad"]
        pod_cmds += ["link set lo up", f"link set {self.iface} up"]
        if self.ipv4:
            pod_cmds.append(f"route add default via {CLIENT_IP} dev {self.iface}")
        if self.ipv6:
            pod_cmds.append(f"route add default via {CLIENT_IP6} dev {self.iface}")
        if self.extra_iface:
            # A second interface: a veth whose peer sits in a third namespace that owns no address of ours, so
            # whatever the pod sends out of it is counted (tx_packets) and lost.
            x = self.extra_iface
            _run(["ip", "netns", "add", self.sink_ns])
            self._created.append(self.sink_ns)
            pod_cmds += [f"link add {x} type veth peer name sink netns {self.sink_ns}", f"link set {x} up"]
            if self.ipv4:
                pod_cmds.append(f"addr add 10.81.0.10/24 dev {x}")
            if self.ipv6:
                pod_cmds.append(f"addr add fd00:81::10/64 dev {x} nodad")
        _run(["ip", "-n", self.pod_ns, "-batch", "-"], input="\n".join(pod_cmds) + "\n")
        if self.extra_iface:
            _run(["ip", "-n", self.sink_ns, "link", "set", "sink", "up"])
        self._sysctl_many(self.pod_ns, pod_sysctl_defaults(self.iface))
        self._sysctl_many(self.client_ns, client_sysctl_defaults())
        self.setup_seconds = time.monotonic() - started

    def close(self) -> None:
        """Kill every process, then delete both namespaces.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        for process in self._processes:
            process.stop()
        self._processes.clear()
        for ns in self._created:
            self._kill_ns_pids(ns)
        for ns in self._created:
            _run(["ip", "netns", "delete", ns], check=False)
        self._created.clear()
        with _live_lock:
            _live.discard(self)

    def _kill_ns_pids(self, ns: str) -> None:
        """Kill processes still inside one of *our* namespaces (e.g. started via run_pod + &)."""
        proc = _run(["ip", "netns", "pids", ns], check=False)
        pids = [int(p) for p in proc.stdout.split() if p.isdigit()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _pid_alive(pid)]
            if pids:
                time.sleep(0.01)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- commands
    def _ns(self, side: Side) -> str:
        return self.pod_ns if side == "pod" else self.client_ns

    def run_in(
        self, side: Side, args: Sequence[str], input: str | None = None, check: bool = True, timeout: float = 15.0
    ) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self._ns(side), *args], input=input, check=check, timeout=timeout)

    def run_pod(
        self, args: Sequence[str], input: str | None = None, check: bool = True, timeout: float = 15.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the pod namespace (text mode, output captured)."""
        return self.run_in("pod", args, input=input, check=check, timeout=timeout)

    def run_client(
        self, args: Sequence[str], input: str | None = None, check: bool = True, timeout: float = 15.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the client namespace (text mode, output captured)."""
        return self.run_in("client", args, input=input, check=check, timeout=timeout)

    def ip(self, *args: str, check: bool = True) -> str:
        """`ip ARGS` in the pod, e.g. ``ip("rule", "add", "fwmark", "1337", "lookup", "133")``."""
        return _run(["ip", "-n", self.pod_ns, *args], check=check).stdout

    def ip_client(self, *args: str, check: bool = True) -> str:
        """`ip ARGS` in the client namespace."""
        return _run(["ip", "-n", self.client_ns, *args], check=check).stdout

    def ip_rule_list(self) -> str:
        """The text of `ip -4 rule list` in the pod."""
        return self.ip("-4", "rule", "list")

    def ip_route_show_all(self) -> str:
        """The text of `ip -4 route show table all` in the pod."""
        return self.ip("-4", "route", "show", "table", "all")

    def ip6_rule_list(self) -> str:
        return self.ip("-6", "rule", "list")

    def ip6_route_show_all(self) -> str:
        return self.ip("-6", "route", "show", "table", "all")

    def ip_addr(self) -> str:
        """`ip -o addr` in the pod."""
        return self.ip("-o", "addr")

    def tx_packets(self, iface: str) -> int:
        """Packets the pod sent out of `iface` (its kernel counter)."""
        out = self.run_pod(["cat", f"/sys/class/net/{iface}/statistics/tx_packets"]).stdout
        return int(out.strip() or 0)

    def _sysctl_many(self, ns: str, items: Iterable[tuple[str, str]]) -> None:
        args = [f"{key}={value}" for key, value in items]
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *args])

    def sysctl(self, key: str, value: str | int, side: Side = "pod") -> None:
        """Set one sysctl in the pod (or client) namespace."""
        self._sysctl_many(self._ns(side), [(key, str(value))])

    def sysctl_get(self, key: str, side: Side = "pod") -> str:
        return self.run_in(side, ["sysctl", "-n", key]).stdout.strip()

    def sysctl_snapshot(self, keys: Iterable[str], side: Side = "pod") -> str:
        """`key = value` lines (sysctl's own format) for the given keys, in order."""
        key_list = list(keys)
        if not key_list:
            return ""
        return self.run_in(side, ["sysctl", *key_list]).stdout

    def load_iptables(self, text: str, backend: Backend | None = None, noflush: bool = False) -> None:
        """Feed iptables-save/restore text (`*table` ... `COMMIT`) to the pod's iptables.

        Uses ``iptables-<backend>-restore`` (the PodNet's backend by default).
        Without ``noflush`` every table named in `text` is replaced.
        """
        if not text.endswith("\n"):
            text += "\n"
        # -w: iptables-legacy serialises on the host-wide /run/xtables.lock, even across namespaces.
        args = [restore_command(backend or self.backend), "-w", "10"]
        if noflush:
            args.append("--noflush")
        self.run_pod(args, input=text)

    def iptables(self, *args: str, backend: Backend | None = None, check: bool = True) -> str:
        """Run one `iptables-<backend> ARGS` command in the pod, e.g. ``("-t", "nat", "-L")``."""
        return self.run_pod([f"iptables-{backend or self.backend}", "-w", "10", *args], check=check).stdout

    def iptables_save(self, backend: Backend | None = None, counters: bool = False) -> str:
        """The pod's `iptables-<backend>-save` output (comment lines included)."""
        args = [save_command(backend or self.backend)]
        if counters:
            args.append("-c")
        return self.run_pod(args).stdout

    def iptables_counters(
        self, table: str, backend: Backend | None = None, side: Side = "pod"
    ) -> list[tuple[str, int, int]]:
        """(rule, packets, bytes) for every rule of `table`, rule as iptables-save prints it.

        E.g. ``("-A OUTPUT -o eth0 -p tcp -m tcp --sport 8080", 5, 500)``.  Handy to
        prove which path a packet took (see docs/kernel-tests.md).
        """
        text = self.run_in(side, [save_command(backend or self.backend), "-c", "-t", table]).stdout
        rows: list[tuple[str, int, int]] = []
        for line in text.splitlines():
            if not line.startswith("[") or "] -A " not in line:
                continue
            counts, rule = line[1:].split("] ", 1)
            packets, nbytes = counts.split(":")
            rows.append((rule, int(packets), int(nbytes)))
        return rows

    def packets(self, table: str, rule_contains: str, backend: Backend | None = None, side: Side = "pod") -> int:
        """Packets counted by the single rule of `table` whose text contains `rule_contains`.

        Match against the text as iptables-save prints it (it adds ``-m tcp`` before
        ``--sport``/``--dport``, writes marks in hex, ...); write observation rules
        in that form so the same string serves for loading and for counting.
        """
        rows = [r for r in self.iptables_counters(table, backend, side) if rule_contains in r[0]]
        if len(rows) != 1:
            raise HarnessError(f"{len(rows)} rules in {table} contain {rule_contains!r}: {rows}")
        return rows[0][1]

    # ---------------------------------------------------------------- stand-ins
    def _standin_args(self, side: Side, command: str, cfg: Mapping[str, Any]) -> list[str]:
        return ["ip", "netns", "exec", self._ns(side), self.python, "-S", str(STANDINS), command, json.dumps(dict(cfg))]

    def listen(
        self,
        name: str,
        port: int,
        addr: str = "0.0.0.0",
        transparent: bool = False,
        uid: int = 0,
        gid: int = 0,
        *,
        keep_caps: bool = False,
        side: Side = "pod",
        proto: Literal["tcp", "udp"] = "tcp",
        start_timeout: float = 5.0,
        owner_at_socket: bool = False,
    ) -> Listener:
        """Start a stand-in listener; returns once it listens (raises HarnessError otherwise).

        One process per listener: it binds (setting IP_TRANSPARENT first when
        `transparent`), listens, then drops to gid/uid (setgroups([]), setgid,
        setuid; with `keep_caps` it keeps NET_ADMIN/NET_RAW like a sidecar
        granted those capabilities).  Accepted sockets therefore belong to
        `uid`, which is what `-m owner` sees for the application's replies.
        """
        if self._closed:
            raise HarnessError("PodNet is closed")
        cfg = {
            "name": name,
            "port": port,
            "addr": addr,
            "transparent": transparent,
            "uid": uid,
            "gid": gid,
            "keep_caps": keep_caps,
        }
        if owner_at_socket:  # udp: drop to uid/gid before socket() (the socket's owner is then uid/gid, not root)
            cfg["owner_at_socket"] = True
        command = "listen" if proto == "tcp" else "udp-listen"
        process = _StandinProcess(self._standin_args(side, command, cfg))
        self._processes.append(process)
        events = process.wait_for(["listening", "error"], timeout=start_timeout)
        if not events or events[0].get("event") != "listening":
            process.stop()
            detail = events[0] if events else {"log": process.log}
            raise HarnessError(f"listener {name!r} on {addr}:{port} ({side}) did not start: {detail}")
        return Listener(name, port, addr, transparent, uid, gid, side, proto, process)

    def _connect(self, side: Side, command: str, cfg: Mapping[str, Any], timeout: float) -> ConnectResult:
        proc = self.run_in(side, self._standin_args(side, command, cfg)[4:], check=False, timeout=2 * timeout + 10)
        line = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        if proc.returncode != 0 or not line:
            raise HarnessError(f"connector failed (rc={proc.returncode}): {proc.stdout}\n{proc.stderr}")
        return ConnectResult.from_json(json.loads(line[0]))

    def connect_from_client(
        self,
        dst: str,
        port: int,
        src: str | None = None,
        sport: int | None = None,
        timeout: float = 1.5,
        payload: str | None = None,
    ) -> ConnectResult:
        """One TCP connection from the client namespace (optionally bound to src:sport)."""
        cfg: dict[str, Any] = {"dst": dst, "port": port, "src": src, "sport": sport, "timeout": timeout}
        if payload is not None:
            cfg["payload"] = payload
        return self._connect("client", "connect", cfg, timeout)

    def connect_from_pod(
        self,
        dst: str,
        port: int,
        uid: int = 0,
        gid: int = 0,
        bind: str | None = None,
        bind_port: int | None = None,
        transparent: bool = False,
        mark: int = 0,
        timeout: float = 1.5,
        *,
        keep_caps: bool = False,
        payload: str | None = None,
    ) -> ConnectResult:
        """One TCP connection from inside the pod namespace.

        The child drops to gid/uid *before* creating the socket (so `-m owner`
        sees `uid`), then sets SO_MARK (`mark`) and IP_TRANSPARENT, then binds
        to `bind`:`bind_port` when given.  SO_MARK and IP_TRANSPARENT need
        CAP_NET_ADMIN: as uid 0 that is always there; for another uid pass
        ``keep_caps=True`` (as Istio grants the sidecar NET_ADMIN), otherwise the
        result is outcome "error", errno "EPERM", stage "SO_MARK"/"IP_TRANSPARENT".
        """
        cfg: dict[str, Any] = {
            "dst": dst,
            "port": port,
            "uid": uid,
            "gid": gid,
            "src": bind,
            "sport": bind_port,
            "transparent": transparent,
            "mark": mark,
            "timeout": timeout,
            "keep_caps": keep_caps,
        }
        if payload is not None:
            cfg["payload"] = payload
        return self._connect("pod", "connect", cfg, timeout)

    def udp_send(
        self,
        side: Side,
        dst: str,
        port: int,
        src: str | None = None,
        sport: int | None = None,
        uid: int = 0,
        gid: int = 0,
        timeout: float = 1.5,
    ) -> ConnectResult:
        """Send one UDP datagram and wait for the UDP stand-in's answer ("connected" = answered)."""
        cfg = {"dst": dst, "port": port, "src": src, "sport": sport, "uid": uid, "gid": gid, "timeout": timeout}
        return self._connect(side, "udp-send", cfg, timeout)

    def sidecar(
        self,
        name: str = "envoy",
        port: int = 15006,
        addr: str = "0.0.0.0",
        transparent: bool = False,
        uid: int = 1337,
        gid: int = 1337,
        keep_caps: bool = True,
        orig_dst: Literal["so_original_dst", "getsockname"] = "so_original_dst",
        upstream_target: str = "original_dst",
        upstream_bind: str | None = None,
        upstream_transparent: bool = False,
        upstream_mark: int = 0,
        upstream_timeout: float = 1.5,
        *,
        io_timeout: float = 3.0,
        max_inflight: int = 8,
        start_timeout: float = 5.0,
    ) -> Sidecar:
        """Start a stand-in sidecar (Envoy's inbound listener, as the kernel sees it) in the pod.

        The listening socket is created and bound as root (IP_TRANSPARENT first when
        `transparent`), then the process drops to gid/uid keeping NET_ADMIN/NET_RAW when
        `keep_caps` (Istio: REDIRECT sidecar uid 1337/gid 1337; TPROXY sidecar uid 0/gid 1337;
        uid 0 stays root).  Upstream sockets are created after the drop, so `-m owner` sees
        uid/gid on them.  For every accepted connection it records peer, local and the original
        destination (`orig_dst`: SO_ORIGINAL_DST, or getsockname for TPROXY), then connects to
        `upstream_target`:

        * ``"original_dst"`` -- the original destination;
        * ``"HOST:PORT"`` -- fixed, e.g. ``"127.0.0.1:8080"``; ``"pod_ip:PORT"`` uses the pod IP;
        * ``"original_port_on:HOST"`` -- HOST (or ``pod_ip``) with the original destination's port.

        The upstream socket gets IP_TRANSPARENT (`upstream_transparent`) and SO_MARK
        (`upstream_mark`) before it is bound to `upstream_bind` (an IP, or ``"downstream_src"``:
        the downstream client's IP, like Envoy's original_src filter; port 0), then connects with
        `upstream_timeout`.  It relays the downstream's first line and the upstream's reply,
        prefixed ``VIA-PROXY <name>``; on a failed connect it answers ``PROXY-ERROR UF <errno>``;
        a connection whose peer is one of its own in-flight upstream sockets is answered
        ``PROXY-ERROR LOOP`` (and a ``loop`` event) instead of being proxied again.
        """
        if self._closed:
            raise HarnessError("PodNet is closed")
        target = upstream_target.replace("pod_ip", self.pod_ip)
        cfg = {
            "name": name,
            "port": port,
            "addr": addr,
            "transparent": transparent,
            "uid": uid,
            "gid": gid,
            "keep_caps": keep_caps,
            "orig_dst": orig_dst,
            "upstream_target": target,
            "upstream_bind": upstream_bind,
            "upstream_transparent": upstream_transparent,
            "upstream_mark": upstream_mark,
            "upstream_timeout": upstream_timeout,
            "io_timeout": io_timeout,
            "max_inflight": max_inflight,
        }
        if orig_dst not in ("so_original_dst", "getsockname"):
            raise ValueError(f"orig_dst must be 'so_original_dst' or 'getsockname', not {orig_dst!r}")
        process = _StandinProcess(self._standin_args("pod", "sidecar", cfg))
        self._processes.append(process)
        events = process.wait_for(["listening", "error"], timeout=start_timeout)
        if not events or events[0].get("event") != "listening":
            process.stop()
            detail = events[0] if events else {"log": process.log}
            raise HarnessError(f"sidecar {name!r} on {addr}:{port} did not start: {detail}")
        return Sidecar(name, port, addr, cfg, process)

    def request_from_client(
        self,
        dst: str,
        port: int,
        sport: int | None = None,
        timeout: float = 3.0,
        *,
        src: str | None = None,
        payload: str | None = None,
    ) -> E2EResult:
        """One end-to-end request from the client namespace: connect, send a line, read one line.

        `timeout` bounds connect and the wait for the answer together; keep it above a
        sidecar's upstream_timeout so its ``PROXY-ERROR UF`` arrives in time.
        """
        cfg: dict[str, Any] = {"dst": dst, "port": port, "src": src, "sport": sport, "timeout": timeout}
        if payload is not None:
            cfg["payload"] = payload
        proc = self.run_in(
            "client", self._standin_args("client", "request", cfg)[4:], check=False, timeout=timeout + 10
        )
        line = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        if proc.returncode != 0 or not line:
            raise HarnessError(f"request failed (rc={proc.returncode}): {proc.stdout}\n{proc.stderr}")
        return E2EResult.from_json(json.loads(line[0]))

    def pids(self) -> list[int]:
        """Pids of the stand-in processes started by this PodNet and still tracked."""
        return [p.pid for p in self._processes]


def _close_all_live() -> None:
    with _live_lock:
        live = list(_live)
    for podnet in live:
        podnet.close()


atexit.register(_close_all_live)
