"""Runs the command line of `analysis.explore.views` when the package is run as a module."""

import sys

from analysis.explore.views import main

sys.exit(main())
