"""meshviz.engine is pure Python: no web framework, task queue, cluster client or database driver.

The engine must run as `python -m meshviz.engine` and inside tests with no Django configured,
so it may not import these packages, directly or through other meshviz modules.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENGINE_DIR = REPO_ROOT / "meshviz" / "engine"
ENGINE_PACKAGE = "meshviz.engine"

FORBIDDEN_PACKAGES = frozenset(
    {
        "django",
        "rest_framework",
        "drf_spectacular",
        "celery",
        "kombu",
        "kubernetes",
        "redis",
        "psycopg",
        "psycopg2",
        "environ",
    }
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module_name: str, is_package: bool, level: int, target: str | None) -> str:
    package_parts = module_name.split(".") if is_package else module_name.split(".")[:-1]
    base = package_parts[: len(package_parts) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _forbidden_reason(imported: str) -> str | None:
    top = imported.split(".")[0]
    if top in FORBIDDEN_PACKAGES:
        return f"imports {imported}"
    if (
        top == "meshviz"
        and imported != "meshviz"
        and not (imported == ENGINE_PACKAGE or imported.startswith(ENGINE_PACKAGE + "."))
    ):
        return f"imports {imported} (outside meshviz.engine, may pull in Django)"
    return None


def _violations_in(path: Path) -> list[str]:
    module_name = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(module_name, is_package, node.level, node.module) if node.level else node.module
            # `from meshviz import web` imports a submodule: check what is imported, not just the package.
            imported = [f"{base}.{alias.name}" for alias in node.names] if base == "meshviz" else [base or ""]
        else:
            continue
        for name in imported:
            reason = _forbidden_reason(name)
            if reason:
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {reason}")
    return found


def test_engine_source_imports_no_framework_or_service_packages() -> None:
    sources = sorted(ENGINE_DIR.rglob("*.py"))
    assert sources, f"no Python files under {ENGINE_DIR}"
    violations = [v for path in sources for v in _violations_in(path)]
    assert not violations, "meshviz.engine must stay pure Python:\n" + "\n".join(violations)


_IMPORT_ALL_ENGINE_MODULES = """
import importlib, json, pkgutil, sys
import meshviz.engine
names = ["meshviz.engine"]
for info in pkgutil.walk_packages(meshviz.engine.__path__, "meshviz.engine."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # importing __main__ would run the CLI; the AST check covers it
    importlib.import_module(info.name)
    names.append(info.name)
forbidden = set(sys.argv[1].split(","))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"imported": names, "forbidden_loaded": loaded}))
"""


def test_engine_imports_without_django_settings_and_loads_no_forbidden_package() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL_ENGINE_MODULES, ",".join(sorted(FORBIDDEN_PACKAGES))],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"importing meshviz.engine failed:\n{result.stderr}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["forbidden_loaded"] == [], (
        f"importing {', '.join(report['imported'])} loaded {', '.join(report['forbidden_loaded'])}"
    )
