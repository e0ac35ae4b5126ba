"""`python -m analysis.explore`: the command line of :mod:`analysis.explore.views`."""

import sys

from analysis.explore.views import main

sys.exit(main())
