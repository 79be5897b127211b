"""In a real browser (Debian's chromium): the collection page follows a collection while it runs - the
state and each step appear as the worker reports them, then the analysis link - without reloading,
through clusters.js polling the collections API with the session."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connections

from meshviz.clusters import services
from meshviz.clusters.models import CollectionJob
from meshviz.clusters.tasks import collect
from tests.browser.conftest import ARTIFACTS, USERNAME, browser_user, log_in, page
from tests.kube.fake_apiserver import POD_NAME, TPROXY_NS, FakeApiServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
__all__ = ["browser_user", "page"]


@pytest.fixture
def queued_job(browser_user: str, fake_apiserver: FakeApiServer) -> CollectionJob:
    """A queued collection of the TPROXY pod whose capture container takes a few seconds (8 pod reads)."""
    from django.contrib.auth.models import User

    fake_apiserver.scenario.terminate_after = 8
    user = User.objects.get(username=USERNAME)
    cluster = services.create_cluster(owner=user, name="kind", in_cluster=False, kubeconfig=fake_apiserver.kubeconfig)
    return CollectionJob.objects.create(owner=user, cluster=cluster, namespace=TPROXY_NS, pod=POD_NAME)


def test_collection_page_shows_steps_live(queued_job: CollectionJob, live_server: Any, page: Page) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = f"/collections/{queued_job.pk}/"
    log_in(page, live_server.url, path)
    expect(page.locator("#job-state")).to_have_text("queued")
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))

    # the "worker": the task runs in another thread while the page stays open
    def run_task() -> None:
        try:
            collect.apply(args=[queued_job.pk])
        finally:
            connections.close_all()  # this thread's connection, or the test database cannot be dropped

    worker = threading.Thread(target=run_task, daemon=True)
    worker.start()
    try:
        expect(page.locator("#job-state")).to_have_text("running")
        steps = page.locator("#steps li")
        expect(steps.filter(has_text="config_dump")).to_contain_text("done")
        expect(steps.filter(has_text="netfilter")).to_contain_text("started")
        page.screenshot(path=str(ARTIFACTS / "collection-running.png"), full_page=True)
        expect(page.locator("#job-state")).to_have_text("done", timeout=30_000)
    finally:
        worker.join(timeout=60)
    expect(steps.filter(has_text="netfilter")).to_contain_text("done")
    expect(page.locator("#provenance")).to_have_text("captured")
    link = page.get_by_role("link", name="Open the analysis")
    expect(link).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "collection-done.png"), full_page=True)
    assert loads == [], f"the page was reloaded: {loads}"
    link.click()
    page.wait_for_url(f"{live_server.url}/a/**")
    expect(page.locator(".state")).to_have_text("done")
