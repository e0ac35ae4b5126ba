"""Shared statistics of the analysis: seed resampling (`seedboot`), the per-budget parabola
(`parabola`), the power-law fits and their batched resample refits (`scaling`,
`scaling_batch`) and the Pareto frontier (`pareto`)."""
