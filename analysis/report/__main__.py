"""`python -m analysis.report`: the command line of :mod:`analysis.report.build`."""

import sys

from analysis.report.build import main
from elm_jax import cli

sys.exit(cli.run(main, prog="analysis.report"))
