"""The REST API's one router: every resource under /api/v1/, plural and kebab-case (docs/api.md).

analyses/            meshviz.analyses.api          uploads, results, diagrams, what-ifs
explorer/            meshviz.web.explorer_api      rule tables, traces, what-if and diffs of an analysis
bug-reports/         meshviz.analyses.bugreport_api
clusters/, collections/, watched-pods/             meshviz.clusters.api
audit/               meshviz.accounts.api
"""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from meshviz.accounts.api import AuditLogViewSet
from meshviz.analyses.api import AnalysisViewSet
from meshviz.analyses.bugreport_api import BugReportViewSet
from meshviz.clusters.api import register as register_clusters

router = DefaultRouter()
router.include_root_view = False
# No `<route>.json` variants: the views take no `format` argument, and content negotiation covers JSON.
router.include_format_suffixes = False
router.register("analyses", AnalysisViewSet, basename="analysis")
router.register("bug-reports", BugReportViewSet, basename="bug-report")
register_clusters(router)
router.register("audit", AuditLogViewSet, basename="audit")
