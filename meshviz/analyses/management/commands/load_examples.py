"""`manage.py load_examples`: one analysis per bundled example (meshviz/analyses/examples/), printed as permalinks.

Idempotent: an example counts as loaded when an analysis holds exactly its evidence (the Envoy dump as stored,
i.e. redacted), pod IP, ports and proxy ids, with no pod name or namespace and its connections untouched
(revision 1) -- whether this command or the /new/ example button created it. Nothing is marked or renamed,
so a loaded example's fix reads exactly as it does from the button.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from meshviz.analyses import examples, services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import enqueue
from meshviz.engine.envoy.redact import redact_config_dump_text


def find_loaded(example: examples.Example) -> Analysis | None:
    """The oldest untouched analysis of the example's evidence, if any."""
    evidence = example.evidence()
    envoy = evidence["envoy_config_dump"] or ""
    if envoy:
        envoy = redact_config_dump_text(envoy)[0]  # stored redacted
    candidates = Analysis.objects.filter(
        iptables=evidence["iptables"],
        ip_rule=evidence["ip_rule"] or "",
        ip_route=evidence["ip_route"] or "",
        sysctl=evidence["sysctl"] or "",
        envoy_config_dump=envoy,
        pod_ip=example.pod_ip,
        proxy_uid=example.proxy_uid,
        proxy_gid=example.proxy_gid,
        pod_name="",
        namespace="",
        revision=1,
    ).order_by("created")
    # app_ports is a JSON list: compared in Python (JSON equality lookups differ between SQLite and PostgreSQL)
    return next((a for a in candidates if [int(p) for p in a.app_ports] == list(example.app_ports)), None)


def load(example: examples.Example) -> Analysis:
    """Create and queue the example's analysis exactly as the /new/ example button does."""
    try:
        analysis = services.create_from_example(example)
    except services.ExampleInvalid as e:
        raise CommandError(str(e)) from e
    enqueue(analysis)
    return analysis


class Command(BaseCommand):
    help = "Create one analysis per bundled example (skipping those already loaded) and print their permalinks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="prefix of the printed permalinks (default: %(default)s, where `make run` serves)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base = str(options["base_url"]).rstrip("/")
        created = 0
        for example in examples.examples():
            analysis = find_loaded(example)
            if analysis is None:
                # With the embedded (eager) Celery the analysis runs here; with a broker a worker runs it.
                analysis = load(example)
                created += 1
                how = "loaded"
            else:
                if not analysis.results_are_current() and analysis.state != Analysis.State.RUNNING:
                    enqueue(analysis)  # stale results (older engine) or never run: run it again
                how = "already loaded"
            analysis.refresh_from_db()
            self.stdout.write(f"  {example.title}\n    {base}{analysis.permalink_path}  ({analysis.state}, {how})")
        self.stdout.write(f"load_examples: {created} created, {len(examples.examples()) - created} already loaded")
