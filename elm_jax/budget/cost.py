"""The cost model (docs/science.md §3): exact parameter and FLOP counts of a model configuration.

Definitions (every count is of trainable parameters; the wiring and fixed time constants in the
``constants`` collection are never counted):

* ELM network: ``k_c`` = synaptic weights per neuron; ``k_e`` = every other per-neuron parameter
  = MLP ``(d_tree + d_m) d_mlp + d_mlp + (l_mlp - 1)(d_mlp^2 + d_mlp) + d_mlp d_m + d_m`` +
  readout ``d_m + 1`` + learnable tau_m ``d_m``. ``P_core = N (k_e + k_c)``.
* Baselines (LSTM, GRU, leaky): the core is the recurrent layer; per unit ``k_c`` = its weights
  from the pool (input and recurrent: ``4 (D_ext + N)`` LSTM, ``3 (D_ext + N)`` GRU,
  ``D_ext + N`` leaky) and ``k_e`` = its other parameters (4 LSTM and GRU biases; bias + tau for
  leaky), so ``P_core = N (k_e + k_c)`` holds for them too. ``d_m`` is 0 for baselines.
* ``P_io`` = encoder + decoder: ``N C + C`` for classification (identity encoder), plus the byte
  embedding ``input_dim * D_ext`` for the language model. ``P_total = P_core + P_io``.

FLOP convention: 2 FLOPs per multiply-accumulate of the model's linear maps, per sample and per
time step, counting each synapse once (the algorithmic sparse count, whatever the connectivity
implementation); embedding lookups, decays and elementwise nonlinearities count 0.
``flops_train_step`` = 3 x ``flops_per_step`` (forward + backward), per sample and time step:
multiply by batch x T x steps for a run's training FLOPs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from elm_jax.baselines import baseline_core_params, baseline_macs_per_step
from elm_jax.models import ModelConfig
from elm_jax.ops import elm_macs_per_neuron


@dataclasses.dataclass(frozen=True)
class Cost:
    """Analytic cost of one model configuration (see the module docstring for conventions)."""

    k_e: int
    k_c: int
    P_core: int
    P_io: int
    P_total: int
    flops_per_step: int
    flops_train_step: int


def elm_k_e(
    *,
    num_memory: int,
    hidden_size: int | None = None,
    num_branches: int = 4,
    mlp_num_layers: int = 1,
    learn_memory_tau: bool = True,
) -> int:
    """Per-neuron non-synaptic parameters k_e of a neuron of the network (docs/science.md §3)."""
    m, h, layers = num_memory, hidden_size or 2 * num_memory, mlp_num_layers
    mlp = (num_branches + m) * h + h + (layers - 1) * (h * h + h) + h * m + m
    return mlp + (m + 1) + (m if learn_memory_tau else 0)


def io_params(cfg: ModelConfig) -> int:
    """Encoder + decoder parameters of ``cfg``."""
    decoder = cfg.num_neurons * cfg.num_classes + cfg.num_classes
    encoder = cfg.task_kind.encoder_params(cfg.input_dim, cfg.embed_dim)
    return encoder + decoder


def single_neuron_cost(cfg: ModelConfig) -> Cost:
    """`Cost` of ``arch="elm_neuron"``: all of it is the one neuron (its readout is the
    classifier, no encoder or decoder); k_c its synapse weights, k_e the rest (docs/science.md
    §2)."""
    neuron = cfg.elm_config
    k_c = neuron.num_synapses
    k_e = neuron.num_params - k_c
    mlp = sum(fan_in * fan_out for fan_in, fan_out in neuron.mlp_sizes)
    flops = 2 * (k_c + mlp + cfg.num_memory * cfg.num_classes)
    return Cost(k_e, k_c, k_e + k_c, 0, k_e + k_c, flops, 3 * flops)


def cost(cfg: ModelConfig) -> Cost:
    """The analytic `Cost` of ``cfg`` (every arch)."""
    if cfg.arch == "elm_neuron":
        return single_neuron_cost(cfg)
    n = cfg.num_neurons
    if cfg.arch == "elm":
        shape = dict(
            num_memory=cfg.num_memory,
            hidden_size=cfg.elm_config.hidden_size,
            num_branches=cfg.num_branches,
            mlp_num_layers=cfg.mlp_num_layers,
        )
        k_e = elm_k_e(**shape, learn_memory_tau=cfg.learn_memory_tau)
        k_c = cfg.synapses_per_neuron
        core_macs = n * elm_macs_per_neuron(**shape, synapses_per_neuron=k_c)
    else:
        k_e, k_c = baseline_core_params(cfg.arch, n, cfg.external_dim)
        core_macs = baseline_macs_per_step(cfg.arch, n, cfg.external_dim)
    p_core = n * (k_e + k_c)
    p_io = io_params(cfg)
    flops = 2 * (core_macs + n * cfg.num_classes)
    return Cost(k_e, k_c, p_core, p_io, p_core + p_io, flops, 3 * flops)


def _leaf_size(leaf: Any) -> int:
    return int(np.prod(np.shape(leaf), dtype=np.int64))


def count_params(variables_or_params: Mapping[str, Any], cfg: ModelConfig) -> dict[str, int]:
    """Counts a real (or `jax.eval_shape`) variables tree into ``{"core", "io", "total"}``.

    Accepts the full variables (only ``params`` is counted) or the params alone; ``core`` is the
    subtree ``core``, ``io`` everything else (encoder, decoder). One replica's tree.
    """
    params = variables_or_params.get("params", variables_or_params)
    if "core" not in params:
        raise ValueError(
            f"params tree with top-level keys {sorted(params)} is invalid: expected a task model's "
            f"params with a 'core' subtree (arch={cfg.arch!r})"
        )
    core = sum(_leaf_size(x) for x in jax.tree_util.tree_leaves(params["core"]))
    io = sum(
        _leaf_size(x)
        for k, v in params.items()
        if k != "core"
        for x in jax.tree_util.tree_leaves(v)
    )
    return {"core": core, "io": io, "total": core + io}
