"""The trained network: N ELM neurons (v2) with fixed random wiring (docs/science.md §3).

`wiring` (the NumPy draw) and `scan` (the recurrence with its custom gradient) → `dynamics`
(branch inputs, the step, the run over time; no Flax) → `layers` (Flax `ELMNetwork`), used by
`elm_jax.models`. The single reference neuron is `elm_jax.neuron`.
"""
