"""The reference port: one ELM neuron exactly as the PyTorch reference (docs/science.md §2).

`config` (validation, counts, routing, init) → `dynamics` (step, scan and its custom VJP; no
Flax) → `layers` (the Flax `ELMNeuron`) → `convert` (released reference checkpoints and configs).
Used by the converter and the tests; the trained network is `elm_jax.network`.
"""
