"""Benchmark: the web app on a node-sized pod (issue 15): upload -> verdict, then each page's time and size.

    python bench/web.py [--services 10000] [--dump-scale N] [--repeat 3] [--skip structure] [--database URL]

The pod: the 10,000-service kube-proxy ruleset (`../shared/bench/gen_kube_proxy_rules.py`, about 80,000 rules)
merged with Istio's TPROXY rules, with the bundled TPROXY example's config dump, policy routing and sysctls
(about 12 MB). It is uploaded through the API (tasks in-process, as `make run` does) into a throwaway SQLite
database (or --database), then each page is fetched --repeat times in-process (Django's test client: server time,
no network) and the median time and the response size are printed, with the targets (every page <= 1 s and
<= 1 MB; a rule-table page <= 300 ms; upload -> verdict <= 5 s) and the process's peak RSS.

`--dump-scale N` swaps the example's config dump for a big mesh's (`../shared/bench/gen_envoy_dump.py --scale N`:
600 gives the 40 MiB dump of `bench/run.py`'s envoy section), to measure a big dump through the web app.

Run it on an older checkout to get the "before" figures: `python bench/web.py --repo /path/to/old/checkout`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_kube_proxy_rules.py"
EXAMPLE = "tproxy-original-src-app-sees-client"


def kube_proxy_rules(services: int) -> str:
    if not GENERATOR.exists():
        raise SystemExit(f"{GENERATOR} not found")
    spec = importlib.util.spec_from_file_location("gen_kube_proxy_rules", GENERATOR)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text: str = mod.generate(services, 3, 7)
    return text


def _tables(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """iptables-save text -> {table: (chain declarations, rule lines)}; `-N X` becomes `:X - [0:0]`."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    current: tuple[list[str], list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = out.setdefault(line[1:].strip(), ([], []))
        elif line == "COMMIT":
            current = None
        elif current is not None and line.startswith(":"):
            current[0].append(line)
        elif current is not None and line.startswith("-N "):
            current[0].append(f":{line[3:].strip()} - [0:0]")
        elif current is not None:
            current[1].append(line)
    return out


def merge_rules(*texts: str) -> str:
    """One iptables-save text with every table of `texts` (chains declared once, rules in order)."""
    merged: dict[str, tuple[list[str], list[str]]] = {}
    for text in texts:
        for table, (decls, rules) in _tables(text).items():
            into = merged.setdefault(table, ([], []))
            seen = {d.split()[0] for d in into[0]}
            into[0].extend(d for d in decls if d.split()[0] not in seen)
            into[1].extend(rules)
    lines: list[str] = []
    for table, (decls, rules) in merged.items():
        lines += [f"*{table}", *decls, *rules, "COMMIT"]
    return "\n".join(lines) + "\n"


def node_pod(services: int, dump_scale: int = 0) -> dict[str, Any]:
    from meshviz.analyses.examples import get

    ex = get(EXAMPLE)
    assert ex is not None, EXAMPLE
    fields = ex.analysis_fields()
    fields["iptables"] = merge_rules(kube_proxy_rules(services), fields["iptables"])
    if dump_scale:
        spec = importlib.util.spec_from_file_location("gen_envoy_dump", GENERATOR.parent / "gen_envoy_dump.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fields["envoy_config_dump"] = json.dumps(module.generate(dump_scale), indent=1)
    keep = ("iptables", "ip_rule", "ip_route", "sysctl", "envoy_config_dump", "pod_ip", "app_ports")
    return {k: fields[k] for k in keep if fields.get(k) not in (None, "")}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--dump-scale", type=int, default=0, help="a big mesh's config dump (gen_envoy_dump --scale)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", action="append", default=[], help="a page to skip (e.g. structure)")
    parser.add_argument("--database", default="", help="DATABASE_URL (default: SQLite in a temporary directory)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    repo = args.repo.resolve()
    sys.path.insert(0, str(repo))
    tmp = tempfile.mkdtemp(prefix="meshviz-bench-web-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "meshviz.settings",
            "DATABASE_URL": args.database or f"sqlite:///{tmp}/db.sqlite3",
            "DEBUG": "false",
            "SECRET_KEY": "bench-web-" + "x" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,testserver",
            "MESHVIZ_MAX_UPLOAD_BYTES": str(200 * 1024 * 1024),
            "MESHVIZ_API_RATE": "1000000/min",
            "MESHVIZ_PAGE_RATE": "1000000/min",
            "MESHVIZ_WHATIF_RATE": "1000000/min",
            "MESHVIZ_MAX_RESULT_BYTES": str(256 * 1024 * 1024),
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    settings.STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User

    from meshviz.accounts.models import ApiKey

    user, _ = User.objects.get_or_create(username="bench")
    key = ApiKey.issue(user, "bench")[1]
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    api = {"HTTP_AUTHORIZATION": f"Api-Key {key}"}

    t0 = time.perf_counter()
    pod = node_pod(args.services, args.dump_scale)
    body = json.dumps(pod)
    print(
        f"node-sized pod: {args.services} services, {pod['iptables'].count(chr(10)):,} iptables lines, "
        f"{len(pod['iptables']) / 1e6:.1f} MB rules + {len(pod.get('envoy_config_dump', '')) / 1e6:.2f} MB dump "
        f"(built in {time.perf_counter() - t0:.1f} s); measuring {repo}",
        flush=True,
    )
    figures: list[dict[str, Any]] = []

    def measure(name: str, fn: Callable[[], Any], repeat: int, target_s: float, target_bytes: int | None) -> Any:
        times: list[float] = []
        response: Any = None
        for _ in range(repeat):
            t = time.perf_counter()
            response = fn()
            times.append(time.perf_counter() - t)
        size = len(response.content) if hasattr(response, "content") else 0
        med = statistics.median(times)
        ok = response.status_code in (200, 201) and med <= target_s and (target_bytes is None or size <= target_bytes)
        row = {
            "page": name,
            "status": response.status_code,
            "median_s": round(med, 3),
            "first_s": round(times[0], 3),
            "bytes": size,
            "target_s": target_s,
            "target_bytes": target_bytes,
            "meets_target": ok,
        }
        figures.append(row)
        limit = f"<= {target_s:g} s" + (f", <= {target_bytes / 1e6:g} MB" if target_bytes else "")
        print(
            f"  {name:<34} {response.status_code}  median {med * 1000:8.0f} ms (first {times[0] * 1000:7.0f} ms)  "
            f"{size / 1e6:8.2f} MB   target {limit}: {'yes' if ok else 'NO'}",
            flush=True,
        )
        return response

    uploaded = time.perf_counter()
    cpu_before = time.process_time()  # this process's CPU, every thread (the analysis runs in a background one)
    created = measure(
        "upload answered (API)",
        lambda: client.post("/api/v1/analyses/", body, content_type="application/json", **api),
        1,
        5.0,
        None,
    )
    if created.status_code != 201:
        raise SystemExit(f"upload failed: {created.status_code} {created.content[:500]!r}")
    slug = created.json()["slug"]
    state = client.get(f"/api/v1/analyses/{slug}/", **api).json()
    print(f"  analysis {slug[:8]}...: state {state['state']}, {len(state.get('verdicts') or [])} connections")
    # the verdict may come from a worker (node-sized evidence): wait for it
    deadline = time.monotonic() + 600
    while state["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        state = client.get(f"/api/v1/analyses/{slug}/", **api).json()
    if state["state"] != "done":
        print(f"  the analysis is {state['state']}: {state.get('error')}")
    took = time.perf_counter() - uploaded
    cpu = time.process_time() - cpu_before
    load = os.getloadavg()[0]
    figures.append(
        {
            "page": "upload -> verdict",
            "state": state["state"],
            "seconds": round(took, 1),
            "cpu_seconds": round(cpu, 1),
            "load_average": round(load, 2),
            "target_s": 5.0,
        }
    )
    print(
        f"  upload -> verdict (state {state['state']}): {took:.1f} s ({cpu:.1f} s of CPU; load average {load:.1f} on "
        f"{os.cpu_count()} cores)   target <= 5 s: {'yes' if took <= 5 else 'NO'}"
    )

    pages: list[tuple[str, Callable[[], Any], float, int | None]] = [
        ("analysis page", lambda: client.get(f"/a/{slug}/"), 1.0, 1_000_000),
        ("analysis (API JSON)", lambda: client.get(f"/api/v1/analyses/{slug}/", **api), 1.0, 1_000_000),
        ("rules page", lambda: client.get(f"/a/{slug}/rules/"), 0.3, 1_000_000),
        ("rules page 2, q=KUBE-SEP", lambda: client.get(f"/a/{slug}/rules/?q=KUBE-SEP&page=2"), 0.3, 1_000_000),
        (
            "rules chain=ISTIO_INBOUND",
            lambda: client.get(f"/a/{slug}/rules/?table=mangle&chain=ISTIO_INBOUND"),
            0.3,
            1_000_000,
        ),
        ("rules JSON (API)", lambda: client.get(f"/api/v1/analyses/{slug}/rules/", **api), 0.3, 1_000_000),
        ("rule detail", lambda: client.get(f"/a/{slug}/rules/mangle/ISTIO_INBOUND/1"), 1.0, 1_000_000),
        ("composer", lambda: client.get(f"/a/{slug}/compose/?src=10.1.1.1&dport=8083&format=json"), 1.0, 1_000_000),
        ("composer page (HTML)", lambda: client.get(f"/a/{slug}/compose/?src=10.1.1.1&dport=8083"), 1.0, 1_000_000),
        ("structure page", lambda: client.get(f"/a/{slug}/structure/"), 1.0, 1_000_000),
    ]
    edit = [{"op": "insert", "family": "ipv4", "table": "mangle", "chain": "ISTIO_INBOUND", "index": 1,
             "rule": "-p tcp --dport 9999 -j RETURN"}]  # fmt: skip
    pages.append(
        (
            "what-if, one edit (API)",
            lambda: client.post(
                f"/api/v1/analyses/{slug}/what-ifs/",
                json.dumps({"edits": edit}),
                content_type="application/json",
                **api,
            ),
            1.0,
            1_000_000,
        )
    )
    for name, fn, target_s, target_bytes in pages:
        if any(s in name for s in args.skip):
            continue
        measure(name, fn, args.repeat, target_s, target_bytes)
    print(f"  peak RSS of this process: {peak_rss_mb():.0f} MB")
    if args.json:
        args.json.write_text(
            json.dumps({"repo": str(repo), "figures": figures, "peak_rss_mb": peak_rss_mb()}, indent=1)
        )


if __name__ == "__main__":
    main()
