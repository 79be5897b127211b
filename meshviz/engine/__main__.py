"""`python -m meshviz.engine ...` — see meshviz.engine.cli."""

import sys

from meshviz.engine.cli import main

sys.exit(main())
