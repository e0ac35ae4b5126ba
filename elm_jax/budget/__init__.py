"""Parameter and FLOP budgets (docs/science.md §3): `cost` (the cost model: pure counts and FLOPs),
`enumeration` (architecture points of a budget, axis and random sweeps) and `cli` (its command
line, run as the module `elm_jax.budget`)."""
