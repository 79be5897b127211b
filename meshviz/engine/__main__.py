"""`python -m meshviz.engine ...` — see meshviz.engine.cli.

A one-shot process, run the way a one-shot process can be (this file only: the library changes nothing global):

* `parse` runs with the cyclic garbage collector off: a big ruleset or dump allocates ~10^6 objects that hold no
  cycles, and the full collections the collector would run over them (0.4-0.6 s on a kube-proxy ruleset) free
  nothing;
* the process ends with `os._exit` once its output is flushed, skipping the interpreter's teardown, which would free
  every parsed object one by one just before the memory goes back to the system anyway.
"""

import gc
import os
import sys

if sys.argv[1:2] == ["parse"]:
    gc.disable()

from meshviz.engine.cli import main

status = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BrokenPipeError:  # the reader went away (`... | head`): nothing more to say
    status = status or 1
os._exit(status)
