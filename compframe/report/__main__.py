"""``python -m compframe.report ARGS``: the same as ``compframe report ARGS``."""

import sys

from ..cli import main

main(["report", *sys.argv[1:]])
