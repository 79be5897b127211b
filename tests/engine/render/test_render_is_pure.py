"""The engine's render module does not import the graphviz package (it writes DOT itself)."""

import subprocess
import sys


def test_importing_render_does_not_import_graphviz() -> None:
    code = "import sys, meshviz.engine.render.dot; print('graphviz' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
