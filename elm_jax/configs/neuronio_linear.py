"""NeuronIO with a linear, LIF-like neuron: the Branch-ELM recipe at d_m = 1 with a linear MLP.

The same routing, data, loss and training as `neuronio_routing.py`, with one memory unit and
`mlp_num_layers = 0`: the reference port's MLP is then one linear layer from the 45 branch
currents and the memory to the memory update, followed by the ELM's scaled tanh
(1.7159 tanh(2/3 ·)), so the neuron is a leaky integrator of a weighted input sum with one
saturating nonlinearity, the closest to a leaky integrate-and-fire neuron the port allows.
It has 4500 + 47 + 4 = 4,551 trainable parameters. The paper's smallest released Branch-ELM,
d_m = 1 with one hidden layer (`num_memory_1`, 4,601 parameters), reaches test AUC 0.9437.

Command line:

    python -m elm_jax.main --config=elm_jax/configs/neuronio_linear.py:data.data_dir=DIR \
        --workdir=runs/neuronio_linear

Expected run time: `python bench/neuronio_step.py --linear` measured 4.6 steps per second on the
shared 2-core CPU machine (load average about 9), the same as d_m = 15 within that machine's
noise: the synapse gather and the scan over 500 steps dominate, not the MLP.
"""

from __future__ import annotations

import ml_collections

from elm_jax.configs import neuronio_routing


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The linear neuron's config; `arg`: variant items as for `neuronio_routing.py`."""
    return neuronio_routing.get_config(",".join(["linear=1", *([arg] if arg else [])]))
