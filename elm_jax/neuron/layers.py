"""Flax module for one ELM neuron (docs/science.md §2); the math lives in `elm_jax.neuron.dynamics`.

Variable layout (docs/interfaces.md):

    params:    proto_w_s [s], proto_tau_m [m] (learn_memory_tau), mlp/dense_j/{kernel, bias},
               w_y/{kernel [m, o], bias [o]}
    constants: proto_tau_m [m] (fixed tau_m), tau_b [d] (v2) | tau_s [s] (v1),
               routing_indices [s] int32, routing_mask [s] bool (when a routing is configured)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from elm_jax.neuron import dynamics
from elm_jax.neuron.config import NeuronConfig, init_proto_tau_m, make_routing
from elm_jax.ops import torch_linear_uniform


def torch_linear_init(fan_in: int, fan_out: int, dtype: Any):
    """Initialiser of one dense layer like torch.nn.Linear: kernel [in, out] and bias [out]
    (`torch_linear_uniform`)."""
    uniform = torch_linear_uniform(fan_in)

    def init(rng: jax.Array) -> dict[str, jax.Array]:
        k_rng, b_rng = jax.random.split(rng)
        return {
            "kernel": uniform(k_rng, (fan_in, fan_out), dtype),
            "bias": uniform(b_rng, (fan_out,), dtype),
        }

    return init


class ELMNeuron(nn.Module):
    """One Expressive Leaky Memory neuron, v1 or v2 (docs/science.md §2), over whole sequences.

    ``config``: the neuron's `NeuronConfig` (validated; `elm_jax.neuron.convert` builds it from
    a released reference config). Besides it, only how the neuron is computed: ``dtype``
    (compute dtype of the matrix products; None → that of the input; the recurrent state stays
    float32, or float64 under x64), ``param_dtype``, ``unroll`` (of the time scan) and ``kernel``
    (what runs the memory recurrence: "auto", "xla" or "cpu_fused"; `elm_jax.neuron.dynamics.scan`).

    Call: `apply(variables, x [b, t, num_input])` → y [b, t, num_output]; with
    `return_traces=True` → (y, {"branch": [b, t, d], "memory": [b, t, m]}).
    """

    config: NeuronConfig
    dtype: Any = None
    param_dtype: Any = jnp.float32
    unroll: int = 1
    kernel: str = "auto"

    @nn.compact
    def __call__(
        self, x: jax.Array, return_traces: bool = False
    ) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
        cfg = self.config
        x = jnp.asarray(x)
        if x.ndim != 3 or x.shape[-1] != cfg.num_input:
            raise ValueError(
                f"x has shape {tuple(x.shape)}: expected [batch, time, num_input={cfg.num_input}]"
            )
        pdt = self.param_dtype
        tree: dict[str, Any] = {}
        tree["proto_w_s"] = self.param(
            "proto_w_s", nn.initializers.constant(cfg.w_s_value), (cfg.num_synapses,), pdt
        )
        proto_tau_m = lambda *_: jnp.asarray(init_proto_tau_m(cfg), pdt)  # noqa: E731
        if cfg.learn_memory_tau:
            tree["proto_tau_m"] = self.param("proto_tau_m", proto_tau_m)
        else:
            tree["proto_tau_m"] = self.variable("constants", "proto_tau_m", proto_tau_m).value

        def mlp_init(rng: jax.Array) -> dict[str, dict[str, jax.Array]]:
            rngs = jax.random.split(rng, len(cfg.mlp_sizes))
            return {
                f"dense_{j}": torch_linear_init(fan_in, fan_out, pdt)(rngs[j])
                for j, (fan_in, fan_out) in enumerate(cfg.mlp_sizes)
            }

        tree["mlp"] = self.param("mlp", mlp_init)
        tree["w_y"] = self.param("w_y", torch_linear_init(cfg.num_memory, cfg.num_output, pdt))
        if cfg.neuron_version == "v2":
            tau = lambda: jnp.full((cfg.num_branches,), cfg.tau_b_value, pdt)  # noqa: E731
            tree["tau_b"] = self.variable("constants", "tau_b", tau).value
        else:
            tau = lambda: jnp.asarray(cfg.tau_s_array, pdt)  # noqa: E731
            tree["tau_s"] = self.variable("constants", "tau_s", tau).value
        if cfg.routing != "none":
            indices, mask = make_routing(cfg)
            tree["routing_indices"] = self.variable(
                "constants", "routing_indices", lambda: jnp.asarray(indices, jnp.int32)
            ).value
            tree["routing_mask"] = self.variable(
                "constants", "routing_mask", lambda: jnp.asarray(mask, bool)
            ).value

        y, branch, memory = dynamics.apply(
            tree, cfg, x, compute_dtype=self.dtype, unroll=self.unroll, kernel=self.kernel
        )
        if return_traces:
            return y, {"branch": branch, "memory": memory}
        return y
