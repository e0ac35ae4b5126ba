"""Configuration of a reference ELM neuron (docs/science.md §2): validation, counts, routing, init.

`NeuronConfig` holds the reference's constructor arguments, checked at construction; the
dynamics (`elm_jax.neuron.dynamics`) and the Flax module (`elm_jax.neuron.layers`) read it.
Axes: i input, s synapse, d branch, m memory, h MLP hidden, o output.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from elm_jax.ops import check_memory_tau_bounds, effective_tau_max, log_spaced_proto_tau

ACTIVATIONS = {"relu": jax.nn.relu, "silu": jax.nn.silu}
# "none": one synapse per input (num_branches * synapses_per_branch == num_input).
ROUTINGS = ("none", "random_routing", "neuronio_routing")
VERSIONS = ("v1", "v2")


@dataclasses.dataclass(frozen=True)
class NeuronConfig:
    """Validated configuration of one ELM neuron: the reference's constructor arguments under
    the project's names (`elm_jax.neuron.convert` translates the reference's `num_branch`,
    `num_synapse_per_branch` and `input_to_synapse_routing`, whose None is `routing="none"`),
    plus `neuron_version` ("v1" | "v2") and `wiring_seed` (draws `random_routing`).
    `num_branches=None` resolves to num_input, as in the reference.

    `tau_s_value` (v1) may be a sequence of per-synapse timescales; when they differ within a
    branch the neuron keeps one trace per synapse (`per_synapse_trace`), otherwise the traces of a
    branch collapse exactly into one branch trace.
    """

    num_input: int
    num_output: int
    num_memory: int = 100
    lambda_value: float = 5.0
    mlp_num_layers: int = 1
    mlp_hidden_size: int | None = None
    mlp_activation: str = "relu"
    tau_b_value: float = 5.0
    tau_s_value: float | tuple[float, ...] = 5.0
    memory_tau_min: float = 1.0
    memory_tau_max: float = 1000.0
    learn_memory_tau: bool = False
    w_s_value: float = 0.5
    num_branches: int | None = None
    synapses_per_branch: int = 1
    routing: str = "none"
    delta_t: float = 1.0
    neuron_version: str = "v2"
    wiring_seed: int = 0

    def __post_init__(self) -> None:
        def positive_int(field: str, value: Any, minimum: int = 1) -> None:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < minimum
            ):
                raise ValueError(f"{field}={value!r}: must be an integer >= {minimum}")

        if self.neuron_version not in VERSIONS:
            raise ValueError(
                f"neuron_version={self.neuron_version!r}: valid choices are {VERSIONS}"
            )
        for field in ("num_input", "num_output", "num_memory", "synapses_per_branch"):
            positive_int(field, getattr(self, field))
        positive_int("mlp_num_layers", self.mlp_num_layers, 0)
        positive_int("wiring_seed", self.wiring_seed, 0)
        if self.mlp_hidden_size is not None:
            positive_int("mlp_hidden_size", self.mlp_hidden_size)
        if self.num_branches is not None:
            positive_int("num_branches", self.num_branches)
        else:  # the reference's default: one branch per input
            object.__setattr__(self, "num_branches", self.num_input)
        if self.mlp_activation not in ACTIVATIONS:
            raise ValueError(
                f"mlp_activation={self.mlp_activation!r}: valid choices are {sorted(ACTIVATIONS)}"
            )
        if self.routing not in ROUTINGS:
            raise ValueError(f"routing={self.routing!r} is invalid: valid choices are {ROUTINGS}")
        check_memory_tau_bounds(self.memory_tau_min, self.memory_tau_max, self.neuron_version)
        for field in ("lambda_value", "delta_t"):
            if not getattr(self, field) > 0:
                raise ValueError(f"{field}={getattr(self, field)!r}: must be > 0")
        if not self.tau_b_value >= 0:
            raise ValueError(f"tau_b_value={self.tau_b_value!r}: must be >= 0")
        tau_s = np.atleast_1d(np.asarray(self.tau_s_value, dtype=np.float64))
        if tau_s.ndim != 1 or not np.all(tau_s >= 0):
            raise ValueError(f"tau_s_value={self.tau_s_value!r}: must be >= 0 (a number or [s])")
        if tau_s.size not in (1, self.num_synapses):
            raise ValueError(
                f"tau_s_value has {tau_s.size} entries: give one number or "
                f"num_synapses={self.num_synapses} values"
            )
        if self.routing == "none" and self.num_synapses != self.num_input:
            raise ValueError(
                f"num_branches * synapses_per_branch = {self.num_synapses} != num_input = "
                f"{self.num_input} without routing; valid choices: routing in "
                f"{ROUTINGS[1:]}, or num_branches * synapses_per_branch == num_input"
            )
        if self.routing == "neuronio_routing":
            stride = math.ceil(self.num_input / self.num_branches)
            if stride > self.synapses_per_branch:
                raise ValueError(
                    f"synapses_per_branch={self.synapses_per_branch}: neuronio_routing "
                    f"needs at least ceil(num_input / num_branches) = {stride} so every input "
                    "reaches a branch"
                )

    @property
    def num_synapses(self) -> int:
        """s = d * synapses per branch."""
        return self.num_branches * self.synapses_per_branch

    @property
    def hidden_size(self) -> int:
        """h: MLP width (2 * num_memory when not given)."""
        return self.mlp_hidden_size if self.mlp_hidden_size else 2 * self.num_memory

    @property
    def tau_max(self) -> float:
        """The upper timescale bound actually used (v2 of the reference widens a degenerate one)."""
        return effective_tau_max(self.memory_tau_min, self.memory_tau_max, self.neuron_version)

    @property
    def tau_s_array(self) -> np.ndarray:
        """tau_s [s] as float64 (v1)."""
        tau_s = np.atleast_1d(np.asarray(self.tau_s_value, dtype=np.float64))
        return np.broadcast_to(tau_s, (self.num_synapses,)).copy()

    @property
    def per_synapse_trace(self) -> bool:
        """v1 with synaptic timescales that differ inside a branch: one trace per synapse."""
        if self.neuron_version != "v1":
            return False
        tau = self.tau_s_array.reshape(self.num_branches, self.synapses_per_branch)
        return bool(np.any(tau != tau[:, :1]))

    @property
    def mlp_sizes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each MLP layer dense_0 .. dense_L."""
        sizes = [self.num_branches + self.num_memory] + [self.hidden_size] * self.mlp_num_layers
        return list(zip(sizes, sizes[1:] + [self.num_memory], strict=True))

    @property
    def num_params(self) -> int:
        """Trainable parameter count (docs/science.md §2)."""
        return num_params(
            num_input=self.num_input,
            num_output=self.num_output,
            num_memory=self.num_memory,
            mlp_num_layers=self.mlp_num_layers,
            mlp_hidden_size=self.mlp_hidden_size,
            num_branches=self.num_branches,
            synapses_per_branch=self.synapses_per_branch,
            learn_memory_tau=self.learn_memory_tau,
        )


def num_params(
    *,
    num_input: int,
    num_output: int,
    num_memory: int,
    mlp_num_layers: int = 1,
    mlp_hidden_size: int | None = None,
    num_branches: int | None = None,
    synapses_per_branch: int = 1,
    learn_memory_tau: bool = False,
) -> int:
    """Trainable parameters of one ELM neuron, docs/science.md §2.

    `d·k` synapse weights + MLP `(d + m)·h + h + (L - 1)(h² + h) + h·m + m` + readout `m·o + o`
    (+ `m` when tau_m is learned). With L = 0 the MLP is one layer `(d + m)·m + m`.
    NeuronIO Branch-ELM (1278 inputs, 45 × 100 synapses, 2 outputs): `4502 + 95·m + 4·m²`.
    """
    d = num_input if num_branches is None else num_branches
    m, h = num_memory, (mlp_hidden_size if mlp_hidden_size else 2 * num_memory)
    if mlp_num_layers == 0:
        mlp = (d + m) * m + m
    else:
        mlp = (d + m) * h + h + (mlp_num_layers - 1) * (h * h + h) + h * m + m
    return (
        d * synapses_per_branch + mlp + m * num_output + num_output + (m if learn_memory_tau else 0)
    )


def init_proto_tau_m(cfg: NeuronConfig) -> np.ndarray:
    """proto_tau_m [m] of a neuron config (see `log_spaced_proto_tau`)."""
    return log_spaced_proto_tau(cfg.num_memory, cfg.memory_tau_min, cfg.tau_max)


def interlocking_indices(num_input: int) -> np.ndarray:
    """Interleaves the excitatory first half and inhibitory second half: 0, h, 1, h+1, ..."""
    steps = np.arange(num_input)
    return (steps % 2) * (num_input // 2) + steps // 2


def neuronio_routing(
    *, num_input: int, num_branches: int, synapses_per_branch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference `neuronio_routing`: overlapping windows over the interleaved inputs.

    Branch j reads interleaved positions j·stride .. j·stride + k - 1 with stride
    ceil(num_input / num_branches); positions past the end are clamped to the last input and masked.
    Returns (indices [s] int32, mask [s] bool).
    """
    stride = math.ceil(num_input / num_branches)
    window = np.arange(num_branches)[:, None] * stride + np.arange(synapses_per_branch)[None, :]
    mask = window < num_input
    window = np.minimum(window, num_input - 1)
    indices = interlocking_indices(num_input)[window.reshape(-1)]
    return indices.astype(np.int32), mask.reshape(-1)


def random_routing(
    *, num_input: int, num_synapses: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Synapse sources drawn uniformly with replacement from `seed`; all synapses valid."""
    indices = np.random.default_rng(seed).integers(0, num_input, size=num_synapses)
    return indices.astype(np.int32), np.ones(num_synapses, dtype=bool)


def make_routing(cfg: NeuronConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """(indices, mask) for the configured routing, or None without routing."""
    if cfg.routing == "neuronio_routing":
        return neuronio_routing(
            num_input=cfg.num_input,
            num_branches=cfg.num_branches,
            synapses_per_branch=cfg.synapses_per_branch,
        )
    if cfg.routing == "random_routing":
        return random_routing(
            num_input=cfg.num_input, num_synapses=cfg.num_synapses, seed=cfg.wiring_seed
        )
    return None
