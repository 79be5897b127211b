from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from meshviz.analyses.api import AnalysisViewSet, summary_slash
from meshviz.api import router as api_router
from meshviz.web import (
    evidence_pages,
    explorer,
    explorer_api,
    explorer_composer,
    explorer_rules,
    explorer_whatif,
    pages,
    views,
)
from meshviz.web.explorer_api import ExplorerViewSet


class DiagramFormat:
    """`svg` or `png` (anything else is a 404)."""

    regex = "svg|png"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(DiagramFormat, "diagramfmt")

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("new/", pages.new_analysis, name="new-analysis"),
    path("new/example/<str:name>/", pages.new_from_example, name="new-from-example"),
    # evidence from where users have it (meshviz/web/evidence_pages.py, docs/collecting-evidence.md)
    path("new/bug-report/", evidence_pages.new_bug_report, name="new-bug-report"),
    path("collect/", evidence_pages.collect_page, name="collect-page"),
    path("collect.sh", evidence_pages.collect_sh, name="collect-sh"),
    path("a/<slug:slug>/", pages.analysis_page, name="analysis"),
    path("a/<slug:slug>/sharing/", pages.share_analysis, name="analysis-page-sharing"),
    path("a/<slug:slug>/rerun/", pages.rerun_analysis, name="analysis-page-rerun"),
    path("a/<slug:slug>/delete/", pages.delete_analysis, name="analysis-page-delete"),
    path("a/<slug:slug>/diagram/<int:number>.<diagramfmt:fmt>", pages.analysis_diagram, name="analysis-diagram"),
    path("a/<slug:slug>/card.png", pages.card_image, name="analysis-card"),
    path("a/<slug:slug>/compare/<int:number>.<diagramfmt:fmt>", pages.compare_diagram, name="analysis-compare"),
    path("a/<slug:slug>/fix/<int:patch>/<int:artifact>.txt", pages.fix_artifact, name="fix-artifact"),
    # explorer (meshviz/web/explorer.py, docs/explorer.md)
    path("a/<slug:slug>/structure/", explorer.structure_page, name="explorer-structure"),
    path("a/<slug:slug>/rules/", explorer_rules.rules_page, name="explorer-rules"),
    # `path`: iptables chain names may contain "/" (any character but whitespace)
    path("a/<slug:slug>/rules/<str:table>/<path:chain>/<int:index>", explorer_rules.rule_page, name="explorer-rule"),
    path("a/<slug:slug>/compose/", explorer_composer.compose_page, name="explorer-compose"),
    path("a/<slug:slug>/whatif/", explorer_whatif.whatif_page, name="explorer-whatif"),
    path("a/<slug:slug>/whatif/patch.txt", explorer_whatif.whatif_patch, name="explorer-whatif-patch"),
    path("a/<slug:slug>/whatif/save/", explorer_whatif.whatif_save, name="explorer-whatif-save"),
    path("a/<slug:slug>/diff/", explorer_whatif.diff_pick, name="explorer-diff-pick"),
    path("diff/<slug:slug_a>/<slug:slug_b>/", explorer_whatif.diff_page, name="explorer-diff"),
    # end explorer
    # not a router action: the router would add a trailing slash after the file name
    path(
        "api/v1/analyses/<slug:slug>/diagram.<diagramfmt:fmt>",
        AnalysisViewSet.as_view({"get": "diagram"}),
        name="api-analysis-diagram",
    ),
    path(
        "api/v1/analyses/<slug:slug>/comparison/diagram.<diagramfmt:fmt>",
        AnalysisViewSet.as_view({"get": "comparison_diagram"}),
        name="api-analysis-comparison-diagram",
    ),
    # the chat message for bots, as /summary?format=text|markdown|slack (meshviz/analyses/chat.py)
    path("api/v1/analyses/<slug:slug>/summary", AnalysisViewSet.as_view({"get": "summary"}), name="api-summary"),
    # the router's style (a trailing slash) is sent on to it, query kept (not a second operation in the schema)
    path("api/v1/analyses/<slug:slug>/summary/", summary_slash, name="api-summary-slash"),
    path("", include("meshviz.clusters.urls")),  # live collection pages
    # the explorer's resources, nested under their analysis (meshviz/web/explorer_api.py)
    path("api/v1/analyses/<slug:slug>/rules/", ExplorerViewSet.as_view({"get": "rules"}), name="api-analysis-rules"),
    path(
        "api/v1/analyses/<slug:slug>/rules/<str:table>/<path:chain>/<int:index>/",
        ExplorerViewSet.as_view({"get": "rule"}),
        name="api-analysis-rule",
    ),
    path(
        "api/v1/analyses/<slug:slug>/traces/", ExplorerViewSet.as_view({"get": "compose"}), name="api-analysis-traces"
    ),
    path(
        "api/v1/analyses/<slug:slug>/what-ifs/",
        ExplorerViewSet.as_view({"post": "whatif"}),
        name="api-analysis-what-ifs",
    ),
    path(
        "api/v1/analyses/<slug:slug>/diffs/<slug:other>/",
        ExplorerViewSet.as_view({"get": "diff"}),
        name="api-analysis-diff",
    ),
    path("api/v1/explorer/<path:rest>", explorer_api.moved, name="api-explorer-moved"),
    path("api/v1/", include(api_router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the split view serves its init script from a URL: no inline script (Content-Security-Policy)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("meshviz.accounts.urls")),
    path("admin/", admin.site.urls),
]
