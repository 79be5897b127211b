"""Load tests of the API, two kinds.

Concurrent clients (issue 15), with --clients: N clients upload a typical pod (the bundled Istio REDIRECT example:
the golden rules and a corpus config dump) back to back for --seconds against a `make run`-style instance of its own
(`manage.py runserver`, threaded, tasks in-process, the embedded SQLite default in a throwaway directory unless
--database names another database), and print requests per second, p50/p95/max upload -> verdict, errors by status
and the server's RSS (start, peak, end).

    python bench/load.py --clients 10 --seconds 60 [--distinct] [--database postgres://postgres@127.0.0.1:5432/load]

The server's CPU per upload and the cores it kept busy are printed too (from /proc): runserver is one process, so
Python work is bounded by one core (the GIL) whatever the number of threads.  --distinct makes every upload's texts
unique (a comment in the rules, whitespace after the dump), so none is answered from the parse-once caches.

Faults (issue 17), without --clients: submit analyses to a real stack while a Celery worker is killed -9, Redis is
unreachable for 10 s and PostgreSQL restarts; then count submitted, done, failed (with reasons) and lost.
Everything runs in a throwaway directory with its own PostgreSQL cluster and Redis on free ports (nothing shared
is touched): gunicorn (2 workers), a Celery worker (2 processes) and beat, with short heartbeat/stale settings so the
reaper acts within the run.

    python bench/load.py [--analyses 60] [--interval 0.5] [--workdir /tmp/meshviz-load]

Needs redis-server, PostgreSQL's initdb/pg_ctl (run as the `postgres` user when started as root).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
EXAMPLE = ROOT / "meshviz/analyses/examples/redirect-app-sees-127.0.0.6"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.pg_port, self.redis_port, self.web_port = free_port(), free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.as_pg = as_pg
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")},
            "DEBUG": "true",
            "SECRET_KEY": "load-test-secret-key-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.pg_port}/meshviz",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/2",
            "CELERY_VISIBILITY_TIMEOUT": "60",
            "MESHVIZ_HEARTBEAT_SECONDS": "3",
            "MESHVIZ_STALE_SECONDS": "15",
            "MESHVIZ_REDISPATCH_GRACE_SECONDS": "2",
            "MESHVIZ_API_RATE": "100000/min",
            "PYTHONPATH": str(ROOT),
        }

    # -- services -------------------------------------------------------
    def start_postgres(self) -> None:
        data = self.dir / "pg"
        if not data.exists():
            data.mkdir(parents=True)
            shutil.chown(data, "postgres") if self.as_pg else None
            os.chmod(self.dir, 0o777)
            subprocess.run(
                [*self.as_pg, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"],
                check=True,
                capture_output=True,
            )
        subprocess.run(
            [
                *self.as_pg,
                "pg_ctl",
                "-D",
                str(data),
                "-o",
                f"-p {self.pg_port} -k {data} -c listen_addresses=127.0.0.1",
                "-l",
                str(data / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def restart_postgres(self) -> None:
        subprocess.run(
            [
                *self.as_pg,
                "pg_ctl",
                "-D",
                str(self.dir / "pg"),
                "-m",
                "fast",
                "-w",
                "restart",
                "-o",
                f"-p {self.pg_port} -k {self.dir / 'pg'} -c listen_addresses=127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )

    def stop_postgres(self) -> None:
        subprocess.run(
            [*self.as_pg, "pg_ctl", "-D", str(self.dir / "pg"), "-m", "immediate", "stop"], capture_output=True
        )

    def start_redis(self) -> None:
        rdir = self.dir / "redis"
        rdir.mkdir(exist_ok=True)
        self.procs["redis"] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(rdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.redis_port)

    def stop_redis(self) -> None:
        proc = self.procs.pop("redis")
        proc.terminate()
        proc.wait(timeout=10)

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=True
        )
        return out.stdout

    def start(self, name: str, cmd: list[str]) -> None:
        logf = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=logf, stderr=logf, start_new_session=True
        )

    def start_worker(self) -> None:
        self.start(
            "worker",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "meshviz",
                "worker",
                "--concurrency=2",
                "--loglevel=INFO",
                "-n",
                f"load-{time.monotonic_ns()}@%h",
            ],
        )

    def kill9_worker(self) -> None:
        proc = self.procs.pop("worker")
        os.killpg(proc.pid, signal.SIGKILL)  # the main process and its pool: the whole worker dies
        proc.wait()

    def up(self) -> None:
        self.start_postgres()
        subprocess.run(
            [*self.as_pg, "createdb", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "meshviz"],
            capture_output=True,
        )
        self.start_redis()
        self.manage("migrate", "--noinput")
        self.start(
            "web",
            [
                PY,
                "-m",
                "gunicorn",
                "meshviz.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--workers",
                "2",
                "--timeout",
                "30",
            ],
        )
        self.start_worker()
        self.start(
            "beat",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "meshviz",
                "beat",
                "--loglevel=INFO",
                f"--schedule={self.dir / 'beat-schedule'}",
            ],
        )
        wait_port(self.web_port)

    def down(self) -> None:
        for name, proc in list(self.procs.items()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM) if name != "redis" else proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.stop_postgres()


def api_key(stack: Stack) -> str:
    code = (
        "from django.contrib.auth.models import User; from meshviz.accounts.models import ApiKey;"
        "u, _ = User.objects.get_or_create(username='load');"
        "print(ApiKey.issue(u, 'load')[1])"
    )
    return stack.manage("shell", "-c", code).strip().splitlines()[-1]


def request(url: str, key: str, body: dict[str, Any] | None = None, timeout: float = 30) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read()
            return exc.code, json.loads(raw)
        except (ValueError, OSError):
            return exc.code, ""
    except (OSError, urllib.error.URLError) as exc:
        return 0, str(exc)


def typical_pod() -> dict[str, Any]:
    """The upload: the bundled REDIRECT example (Istio's golden rules and a corpus config dump)."""
    meta = json.loads((EXAMPLE / "example.json").read_text())
    return {
        "iptables": (EXAMPLE / "iptables").read_text(),
        "envoy_config_dump": (EXAMPLE / "envoy.json").read_text(),
        "pod_ip": meta["pod_ip"],
        "app_ports": meta["app_ports"],
    }


def distinct(payload: dict[str, Any], n: int) -> dict[str, Any]:
    """`payload` made unlike any other upload (a comment in the rules, whitespace after the dump's JSON): nothing the
    server keeps from an earlier upload of the same texts (its parse-once caches) can answer it."""
    return {
        **payload,
        "iptables": payload["iptables"] + f"# upload {n}\n",
        "envoy_config_dump": payload["envoy_config_dump"] + " " * (n % 997 + 1) + "\n" * (n // 997 + 1),
    }


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its children (MB), from /proc."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, seconds) used so far by `pid` and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the command: state is fields[0]; utime, stime, cutime, cstime are stat fields 14-17
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def concurrent_load(args: argparse.Namespace) -> None:
    """--clients N uploading back to back for --seconds against a `make run`-style server; prints the figures."""
    workdir: Path = args.workdir
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")},
        "DEBUG": "true",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MESHVIZ_API_RATE": "1000000/min",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    env["DATABASE_URL"] = args.database or f"sqlite:///{workdir / 'db.sqlite3'}"
    database = "PostgreSQL" if env["DATABASE_URL"].startswith(("postgres", "pgsql")) else "SQLite (embedded default)"

    def manage(*margs: str) -> str:
        out = subprocess.run([PY, "manage.py", *margs], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        return out.stdout

    manage("migrate", "--noinput")
    code = (
        "from django.contrib.auth.models import User; from meshviz.accounts.models import ApiKey;"
        "u, _ = User.objects.get_or_create(username='load');"
        "print(ApiKey.issue(u, 'load')[1])"
    )
    key = manage("shell", "-c", code).strip().splitlines()[-1]
    logf = open(workdir / "server.log", "ab")  # noqa: SIM115 - kept open for the server's life
    server = subprocess.Popen(
        [PY, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=logf,
        stderr=logf,
        start_new_session=True,
    )
    try:
        wait_port(port)
        base = f"http://127.0.0.1:{port}/api/v1/analyses/"
        payload = typical_pod()
        request(base, key, payload, timeout=60)  # warm-up: imports and first queries, not counted
        uploads = iter(range(1, 10**9))
        rss_start = rss_mb(server.pid)
        cpu_start = cpu_seconds(server.pid)
        rss_peak = [rss_start]
        samples: list[tuple[float, int, str]] = []  # (seconds, status, error text)
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        log(f"{args.clients} clients uploading for {args.seconds:.0f} s to {base} ({database})")

        def client() -> None:
            while time.monotonic() < stop_at:
                with lock:
                    n = next(uploads)
                body_n = distinct(payload, n) if args.distinct else payload
                t0 = time.perf_counter()
                status, body = request(base, key, body_n, timeout=120)
                took = time.perf_counter() - t0
                why = ""
                if status == 201 and isinstance(body, dict) and body.get("state") != "done":
                    why = f"state {body.get('state')}"  # in-process tasks: the verdict is there when it answers
                elif status != 201:
                    errs = body.get("errors") if isinstance(body, dict) else None
                    why = str(errs[0].get("message") if errs else body)[:120]
                with lock:
                    samples.append((took, status, why))

        def watch() -> None:
            while time.monotonic() < stop_at:
                rss_peak.append(rss_mb(server.pid))
                time.sleep(1)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        threads.append(threading.Thread(target=watch, daemon=True))
        started = time.monotonic()
        for th in threads:
            th.start()
        for th in threads[:-1]:
            th.join()
        elapsed = time.monotonic() - started
        cpu_used = cpu_seconds(server.pid) - cpu_start
        rss_end = rss_mb(server.pid)
        ok = [t for t, status, why in samples if status == 201 and not why]
        errors = Counter(f"{status} {why}".strip() for _, status, why in samples if status != 201 or why)
        report = {
            "database": database,
            "distinct_uploads": args.distinct,
            "clients": args.clients,
            "seconds": round(elapsed, 1),
            "requests": len(samples),
            "requests_per_second": round(len(samples) / elapsed, 2),
            "ok": len(ok),
            "errors": sum(errors.values()),
            "error_rate": round(sum(errors.values()) / max(1, len(samples)), 4),
            "errors_by_kind": dict(errors),
            "p50_ms": round(percentile(ok, 0.5) * 1000),
            "p95_ms": round(percentile(ok, 0.95) * 1000),
            "max_ms": round(max(ok) * 1000) if ok else None,
            "mean_ms": round(statistics.fmean(ok) * 1000) if ok else None,
            # the server's CPU over the run: per upload, and as cores kept busy (2 on the development machine)
            "server_cpu_ms_per_upload": round(cpu_used * 1000 / max(1, len(samples))),
            "server_cores_busy": round(cpu_used / elapsed, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "server_rss_mb": {"start": round(rss_start), "peak": round(max(rss_peak)), "end": round(rss_end)},
        }
        print(json.dumps(report, indent=1))
        (workdir / "report.json").write_text(json.dumps(report, indent=1))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=0, help="concurrent clients (issue 15); 0: the faults run")
    parser.add_argument("--seconds", type=float, default=60, help="with --clients: how long they upload")
    parser.add_argument("--database", default="", help="with --clients: DATABASE_URL (default: SQLite in --workdir)")
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="with --clients: make every upload's texts unique (a comment, whitespace), so no cache of the server's "
        "answers a repeated pod",
    )
    parser.add_argument("--analyses", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/meshviz-load"))
    parser.add_argument("--settle", type=float, default=240, help="seconds to wait for every analysis to finish")
    args = parser.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    if args.clients > 0:
        concurrent_load(args)
        return
    stack = Stack(args.workdir)
    payload = typical_pod()
    log(f"starting PostgreSQL :{stack.pg_port}, Redis :{stack.redis_port}, gunicorn :{stack.web_port}, worker, beat")
    stack.up()
    try:
        key = api_key(stack)
        base = f"http://127.0.0.1:{stack.web_port}/api/v1/analyses/"
        results: list[tuple[float, int, Any]] = []
        lock = threading.Lock()

        def submit() -> None:
            t = time.monotonic()
            status, body = request(base, key, payload)
            with lock:
                results.append((t, status, body))

        start = time.monotonic()
        faults = [
            (0.15, "kill -9 the Celery worker (restarted 3 s later)"),
            (0.40, "Redis unreachable for 10 s"),
            (0.70, "PostgreSQL restarted"),
        ]
        threads: list[threading.Thread] = []
        done_faults: list[str] = []
        for i in range(args.analyses):
            progress = i / args.analyses
            while faults and progress >= faults[0][0]:
                _, what = faults.pop(0)
                log(f"fault: {what}")
                done_faults.append(what)
                if what.startswith("kill"):
                    stack.kill9_worker()
                    threading.Timer(3, stack.start_worker).start()
                elif what.startswith("Redis"):
                    stack.stop_redis()
                    threading.Timer(10, stack.start_redis).start()
                else:
                    threading.Thread(target=stack.restart_postgres).start()
            th = threading.Thread(target=submit)
            th.start()
            threads.append(th)
            time.sleep(args.interval)
        for th in threads:
            th.join()
        log(f"submitted {len(results)} in {time.monotonic() - start:.0f} s; waiting up to {args.settle:.0f} s")
        slugs = {body["slug"] for _, status, body in results if status in (201, 202) and isinstance(body, dict)}
        refused = Counter(status for _, status, body in results if status not in (201, 202))
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:
            for slug in slugs - set(final):
                status, body = request(f"{base}{slug}/", key, timeout=10)
                if status == 200 and body.get("state") in ("done", "failed"):
                    final[slug] = body
            if len(final) == len(slugs):
                break
            time.sleep(3)
        states = Counter(b["state"] for b in final.values())
        reasons = Counter((b.get("error") or "").split(":")[0] for b in final.values() if b["state"] == "failed")
        pending = {}
        for slug in slugs - set(final):
            status, body = request(f"{base}{slug}/", key, timeout=10)
            pending[slug] = body.get("state") if isinstance(body, dict) else status
        report = {
            "faults": done_faults,
            "submitted": len(results),
            "accepted": len(slugs),
            "accepted_201": sum(1 for _, s, _ in results if s == 201),
            "accepted_202_broker_down": sum(1 for _, s, _ in results if s == 202),
            "refused_with_status": dict(refused),
            "done": states.get("done", 0),
            "failed": states.get("failed", 0),
            "failed_reasons": dict(reasons),
            "lost": len(slugs) - len(final),
            "not_finished": pending,
        }
        print(json.dumps(report, indent=1))
        (args.workdir / "report.json").write_text(json.dumps(report, indent=1))
    finally:
        stack.down()


if __name__ == "__main__":
    main()
