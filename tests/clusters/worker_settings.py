"""Settings for a worker process started by a test: meshviz's own, with every task routed to the test's queue
(MESHVIZ_TEST_QUEUE), so the analysis a collection queues is consumed by the same worker, not by whatever
else listens on the default queue."""

import os

from meshviz.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ["MESHVIZ_TEST_QUEUE"]
# The fake API server listens on loopback, which meshviz refuses by default (netguard).
MESHVIZ_COLLECT_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
