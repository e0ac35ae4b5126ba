"""`python -m elm_jax.budget`: see `elm_jax.budget.cli`."""

import sys

from elm_jax.budget.cli import main

sys.exit(main())
