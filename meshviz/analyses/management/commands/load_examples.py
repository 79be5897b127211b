"""`manage.py load_examples`: one analysis per bundled example (meshviz/analyses/examples/), printed as permalinks.

The loaded examples are public (read-only for everyone: they hold no one's data) and owned by `--owner`
(default: the demo user, when it exists). Idempotent: an example counts as loaded when a public analysis holds
exactly its evidence (the Envoy dump as stored, i.e. redacted), pod IP, ports and proxy ids (its pod name and
namespace come from that evidence) with its connections untouched (revision 1). A user's own run of an example (the /new/ button)
is private to them and never counts.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from meshviz.analyses import examples, services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import enqueue
from meshviz.engine.api import redact_config_dump_text


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
        revision=1,
        public=True,
    ).order_by("created")
    # app_ports is a JSON list: compared in Python (JSON equality lookups differ between SQLite and PostgreSQL)
    return next((a for a in candidates if [int(p) for p in a.app_ports] == list(example.app_ports)), None)


def load(example: examples.Example, owner: Any = None) -> Analysis:
    """Create and queue the example's analysis as the /new/ example button does, but public."""
    try:
        analysis = services.create_from_example(example, owner=owner, public=True)
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
        parser.add_argument(
            "--owner",
            default=None,
            help="username owning the loaded examples (default: MESHVIZ_DEMO_USER when that user exists, else none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base = str(options["base_url"]).rstrip("/")
        users = get_user_model().objects
        owner = None
        if options["owner"]:
            owner = users.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"no user named {options['owner']!r}")
        else:
            owner = users.filter(username=settings.MESHVIZ_DEMO_USER).first()
        created = 0
        for example in examples.examples():
            analysis = find_loaded(example)
            if analysis is None:
                # With the embedded (eager) Celery the analysis runs here; with a broker a worker runs it.
                analysis = load(example, owner)
                created += 1
                how = "loaded"
            else:
                if not analysis.results_are_current() and analysis.state != Analysis.State.RUNNING:
                    enqueue(analysis)  # stale results (older engine) or never run: run it again
                how = "already loaded"
            analysis.refresh_from_db()
            self.stdout.write(f"  {example.title}\n    {base}{analysis.permalink_path}  ({analysis.state}, {how})")
        self.stdout.write(f"load_examples: {created} created, {len(examples.examples()) - created} already loaded")
