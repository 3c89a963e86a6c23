"""python -m pyweightvc_bench: the same as pyweightvc-bench / pyweightvc bench."""

import sys

from .cli import main

sys.exit(main())
