"""Issue 15's upload settings: 100 MiB per evidence file, 256 MiB per body, files over 2.5 MiB streamed to disk, and
gzip request bodies undone before anything (the CSRF check, a view) reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

_PRINT = """
import json
from django.conf import settings
print(json.dumps({k: getattr(settings, k) for k in ("MESHVIZ_MAX_UPLOAD_BYTES", "MESHVIZ_MAX_REQUEST_BYTES",
    "FILE_UPLOAD_MAX_MEMORY_SIZE", "DATA_UPLOAD_MAX_MEMORY_SIZE", "MESHVIZ_BACKGROUND_BYTES", "MIDDLEWARE")}))
"""


def _settings(**overrides: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHVIZ_")}
    env.update(overrides, DJANGO_SETTINGS_MODULE="meshviz.settings")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _PRINT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_defaults_take_node_sized_evidence_and_stream_files_to_disk() -> None:
    s = _settings()
    assert s["MESHVIZ_MAX_UPLOAD_BYTES"] == 100 * 1024 * 1024
    assert s["MESHVIZ_MAX_REQUEST_BYTES"] == 256 * 1024 * 1024
    assert s["FILE_UPLOAD_MAX_MEMORY_SIZE"] == 2621440
    assert s["DATA_UPLOAD_MAX_MEMORY_SIZE"] == s["MESHVIZ_MAX_UPLOAD_BYTES"]
    assert s["MESHVIZ_BACKGROUND_BYTES"] == 2 * 1024 * 1024
    middleware = list(s["MIDDLEWARE"])  # type: ignore[call-overload]
    gzip = middleware.index("meshviz.web.uploads.GzipRequestMiddleware")
    assert gzip < middleware.index("django.middleware.csrf.CsrfViewMiddleware")
    assert gzip < middleware.index("meshviz.web.ratelimit.PageRateLimitMiddleware")


def test_limits_come_from_the_environment() -> None:
    s = _settings(MESHVIZ_MAX_UPLOAD_BYTES="1000", MESHVIZ_MAX_REQUEST_BYTES="5000", MESHVIZ_BACKGROUND_BYTES="0")
    assert (s["MESHVIZ_MAX_UPLOAD_BYTES"], s["MESHVIZ_MAX_REQUEST_BYTES"], s["MESHVIZ_BACKGROUND_BYTES"]) == (
        1000,
        5000,
        0,
    )
