"""End to end through a real `celery -A meshviz worker` process on Redis: the test queues a collection, the
worker decrypts the kubeconfig (same MESHVIZ_ENCRYPTION_KEY), collects the pod from the fake Kubernetes API
server over real HTTP/websockets, records each step as it goes (seen from here while it runs), creates the
analysis and queues it; the same worker runs the analysis. PostgreSQL: the worker is another process."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from meshviz.analyses.models import Analysis
from meshviz.clusters import services
from meshviz.clusters.models import CollectionJob
from tests.analyses.worker import Worker, producer_for, require_worker_prerequisites, wait_for
from tests.kube.fake_apiserver import POD_NAME, TPROXY_NS, FakeApiServer

from .conftest import ENCRYPTION_KEY


@pytest.mark.django_db(transaction=True)
def test_collect_pod_creates_analysis_through_real_worker(
    tmp_path: Path, user: User, fake_apiserver: FakeApiServer
) -> None:
    require_worker_prerequisites()
    cluster = services.create_cluster(owner=user, name="kind", in_cluster=False, kubeconfig=fake_apiserver.kubeconfig)
    # queued by hand (start_collection would run it in-process here: this test process has no broker)
    job = CollectionJob.objects.create(owner=user, cluster=cluster, namespace=TPROXY_NS, pod=POD_NAME)
    queue = f"meshviz-test-{uuid.uuid4().hex}"
    worker = Worker(
        queue,
        tmp_path / "worker.log",
        env={
            "MESHVIZ_ENCRYPTION_KEY": ENCRYPTION_KEY,
            "MESHVIZ_TEST_QUEUE": queue,
            "DJANGO_SETTINGS_MODULE": "tests.clusters.worker_settings",
        },
    )
    seen: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    def finished() -> bool:
        current = CollectionJob.objects.filter(pk=job.pk).values("state", "steps", "analysis_id").get()
        snapshot = (current["state"], tuple((s["step"], s["state"]) for s in current["steps"]))
        if not seen or seen[-1] != snapshot:
            seen.append(snapshot)
        if current["state"] == CollectionJob.State.FAILED:
            return True
        if current["analysis_id"] is None:
            return False
        return Analysis.objects.filter(pk=current["analysis_id"], state__in=["done", "failed"]).exists()

    try:
        with producer_for(queue) as producer:
            producer.send_task("meshviz.clusters.collect", args=[job.pk], queue=queue)
            assert wait_for(finished, timeout=90), f"not finished; seen {seen}\n{worker.output()}"
    finally:
        worker.stop()
    output = worker.output()

    job.refresh_from_db()
    assert job.state == CollectionJob.State.DONE, f"{job.error}\n{output}"
    assert "meshviz.clusters.collect" in output and "meshviz.analyses.analyse" in output
    # progress was visible while the worker ran: the job was running with only the first steps recorded
    running = [steps for state, steps in seen if state == CollectionJob.State.RUNNING]
    assert running and any(("netfilter", "done") not in steps for steps in running), seen
    assert [s["step"] for s in job.steps][-1] == "done"
    # the capture container really ran (in the fake) and the analysis is the TPROXY pod's
    assert len(fake_apiserver.captures) == 1
    analysis = job.analysis
    assert analysis is not None and analysis.state == Analysis.State.DONE, output
    assert analysis.owner == user and analysis.origin == Analysis.Origin.CAPTURED
    assert analysis.interception_mode == "TPROXY"
    verdict: dict[str, Any] = analysis.results["stories"][0]["verdict"]
    assert verdict["app_peer_ip"] == "10.255.0.1"  # TPROXY + original_src + policy route: the client's IP
    # the worker never logged the kubeconfig's token
    assert fake_apiserver.token not in output
