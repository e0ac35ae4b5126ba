"""Runs the command line of `analysis.report.build` when the package is run as a module."""

import sys

from analysis.report.build import main
from elm_jax import cli

sys.exit(cli.run(main, prog="analysis.report"))
