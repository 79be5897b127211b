"""meshviz engine: parse a pod's network evidence and simulate packets through it.

Pure Python: no Django, Celery or Kubernetes imports (`.importlinter`, tests/test_engine_purity.py).
One subpackage per layer (docs/architecture.md); callers use the facade, `meshviz.engine.api`.
"""
