"""Live collection: a pod's evidence read through the Kubernetes API (issue 7).

No Django or Celery here: the web app's task calls these functions and stores the result.

* `kube` - `api_client(kubeconfig=... | in_cluster=True)`, `contexts(kubeconfig)`, `capabilities(api, ns)`
* `discover` - `list_namespaces(api)`, `list_pods(api, ns)` -> `PodSummary`
* `collect` - `collect_pod(api, ns, pod, progress=...)` -> `Collection`
* `errors` - `CollectError(kind, step, message, retryable)`

docs/live-collection.md describes what runs in the pod, the RBAC (deploy/rbac.yaml) and the fallbacks.
"""

from meshviz.collect.capture import DEFAULT_DEBUG_IMAGE
from meshviz.collect.collect import Collection, collect_pod
from meshviz.collect.discover import PodSummary, list_namespaces, list_pods
from meshviz.collect.errors import CollectError
from meshviz.collect.kube import CAPABILITY_CHECKS, api_client, capabilities, contexts

__all__ = [
    "CAPABILITY_CHECKS",
    "DEFAULT_DEBUG_IMAGE",
    "CollectError",
    "Collection",
    "PodSummary",
    "api_client",
    "capabilities",
    "collect_pod",
    "contexts",
    "list_namespaces",
    "list_pods",
]
