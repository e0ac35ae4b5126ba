"""Training: pure jitted steps (`steps`) and the run loop over them (`loop`).

`elm_jax.train.steps` holds what is compiled (the step spec, train/eval steps, the initial state,
evaluation and best-checkpoint bookkeeping); `elm_jax.train.loop` holds what runs on the host
(config checks, resume, logs, the summary) and imports the steps, never the reverse.
"""
