"""`/collect.sh` serves the collector script itself (POSIX sh, kubectl only) and `/collect/` explains it: what it
runs, the ephemeral container, the fallback, the secrets; the new-analysis page links both ways in."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.test import Client

from meshviz.web.evidence_pages import COLLECT_SH


@pytest.mark.django_db
def test_script_and_page(anon_client: Client, client: Client) -> None:
    script = anon_client.get("/collect.sh")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/x-shellscript")
    body = script.content.decode()
    assert body == COLLECT_SH.read_text() and body.startswith("#!/bin/sh\n")

    page = anon_client.get("/collect/").content.decode()
    for words in (
        "kubectl debug",
        "NET_ADMIN",
        "pilot-agent request GET config_dump",
        "reconstructed, not captured",
        "[redacted by collect.sh]",
        "ip6tables-save",
        "nft list ruleset",
        "manifest.json",
    ):
        assert words in page, words
    assert "http://testserver/collect.sh" in page

    new = client.get("/new/").content.decode()
    assert 'href="/collect/"' in new and 'href="/new/bug-report/"' in new and 'name="bundle"' in new


def test_script_is_posix_sh_and_prints_usage() -> None:
    for shell in ("sh", "dash", "bash"):
        path = shutil.which(shell)
        if path is None:
            continue
        assert subprocess.run([path, "-n", str(COLLECT_SH)], capture_output=True).returncode == 0, shell
    usage = subprocess.run(["sh", str(COLLECT_SH)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: sh collect.sh [-n NAMESPACE] POD" in usage.stderr
    assert len(COLLECT_SH.read_text().splitlines()) < 140  # readable in a screen or two
