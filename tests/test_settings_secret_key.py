"""SECRET_KEY falls back to a named insecure key only in DEBUG; production must set it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

_PRINT_SECRET_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"


def _load_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env["DJANGO_SETTINGS_MODULE"] = "meshviz.settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", _PRINT_SECRET_KEY],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_debug_without_secret_key_uses_the_named_insecure_dev_key() -> None:
    result = _load_settings(DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("django-insecure-")


def test_production_without_secret_key_refuses_to_start() -> None:
    result = _load_settings(DEBUG="false")

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_secret_key_comes_from_the_environment() -> None:
    result = _load_settings(DEBUG="false", SECRET_KEY="from-the-environment")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-the-environment"
