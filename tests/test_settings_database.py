"""Settings take the database from DATABASE_URL, and default to SQLite in the repo root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

_PRINT_DATABASE = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({"engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST", "")}))
"""


def _database_settings(database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DJANGO_SETTINGS_MODULE"] = "meshviz.settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-c", _PRINT_DATABASE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_database_url_for_postgres_selects_the_postgresql_backend() -> None:
    db = _database_settings("postgres://meshviz:secret@db.example:5432/meshviz")

    assert db["engine"] == "django.db.backends.postgresql"
    assert db["name"] == "meshviz"
    assert db["host"] == "db.example"


def test_without_database_url_settings_use_sqlite_in_the_repo_root() -> None:
    db = _database_settings(None)

    assert db["engine"] == "django.db.backends.sqlite3"
    assert Path(db["name"]) == REPO_ROOT / "db.sqlite3"
