"""Runs the command line `elm_jax.budget.cli` when the package is run as a module."""

import sys

from elm_jax.budget.cli import main

sys.exit(main())
