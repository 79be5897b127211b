"""meshviz engine: parse a pod's network evidence and simulate packets through it.

Pure Python: no Django, Celery or Kubernetes imports (tests/test_engine_purity.py).
"""
