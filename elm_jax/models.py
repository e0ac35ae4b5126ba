"""Task models: encoder -> recurrent core (ELM network or baseline) -> decoder (docs/science.md §3).

* ``task="classification"`` (SHD, SHD-Adding): identity encoder, the ``input_dim`` spike-count
  channels are the pool's external part (D_ext = input_dim); logits at every step
  ``[b, t, num_classes]`` (the trainer takes the last step for the loss).
* ``task="lm"`` (Enwik8): byte embedding ``input_dim x embed_dim`` (D_ext = embed_dim); logits at
  every step; the returned carry continues the stream in the next chunk.
* ``task="neuronio"`` (NeuronIO): as classification, with ``num_classes = 2`` outputs at every
  step (spike logit, soma) and a loss at every step after the burn-in.

The task's object (``ModelConfig.task_kind``, elm_jax.tasks) decides the encoder and checks the
inputs; its loss and metrics are the trainer's.

Every model is called as ``logits, carry = model.apply(variables, inputs, carry=None)``.
Variables: ``params/encoder`` (lm only), ``params/core``, ``params/decoder`` and, for the ELM
network, ``constants/core`` (wiring, fixed time constants).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from elm_jax import tasks
from elm_jax.baselines import ChronoLSTMLayer, GRULayer, LeakyLayer, LSTMLayer, lstm_zero_carry
from elm_jax.network.dynamics import zero_carry
from elm_jax.network.fused import KERNELS, resolve_kernel
from elm_jax.network.layers import ELMNetwork
from elm_jax.network.wiring import validate_wiring_args
from elm_jax.neuron.config import NeuronConfig
from elm_jax.neuron.layers import ELMNeuron
from elm_jax.ops import check_memory_tau_bounds, elm_macs_per_neuron

Array = jax.Array

ARCHS = ("elm", "lstm", "gru", "leaky", "elm_neuron")
# arch "elm_neuron": synapse routings of the reference neuron (docs/science.md §2; "none": one
# per input).
ROUTINGS = ("none", "random_routing", "neuronio_routing")
CONNECTIVITIES = ("auto", "gather", "dense")
LAYOUTS = ("auto", "neuron_major", "neuron_minor")
TIME_UNITS = ("steps", "ms")
_INT_FIELDS = (
    "input_dim",
    "num_classes",
    "embed_dim",
    "num_neurons",
    "num_memory",
    "synapses_per_neuron",
    "num_branches",
    "mlp_num_layers",
    "wiring_seed",
    "synapses_per_branch",
)
_POSITIVE_FLOATS = ("lambda_value", "memory_tau_max", "delta_t")
# Zero is legal where the reference clamps every timescale at 1e-6 (docs/science.md §4).
_NONNEGATIVE_FLOATS = ("tau_b_value", "memory_tau_min")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of one task model (plain data; validated on construction).

    Defaults: SHD-Adding classifier, ELM network with d_tree = 4 branches, d_mlp = 2 d_m, one
    hidden layer, half of the synapses recurrent, learnable tau_m, v2 dynamics with lambda = 5.
    Time is measured in steps (delta_t = 1): tau_b = 5 steps (50 ms at 10 ms SHD bins) smooths
    the spike counts, and tau_m is initialised log-spaced over [1, 1000] steps (10 ms .. 10 s at
    10 ms bins), which spans both the within-digit scale and the 2 s SHD-Adding sequence.
    """

    arch: str = "elm"
    task: str = "classification"
    input_dim: int = 700
    num_classes: int = 19
    embed_dim: int = 64
    num_neurons: int = 64
    num_memory: int = 8
    synapses_per_neuron: int = 16
    num_branches: int = 4
    mlp_num_layers: int = 1
    mlp_hidden_size: int | None = None
    recurrent_fraction: float = 0.5
    wiring_seed: int = 0
    connectivity: str = "auto"
    layout: str = "auto"
    remat_chunk: int = 10
    # The ELM network recurrence's implementation (elm_jax.network.fused.KERNELS): "auto" runs
    # the fused CPU kernel on a CPU when it is built and covers the config, the Pallas kernel
    # on an NVIDIA GPU when it covers the config, the XLA scan else; "xla", "cpu_fused" and
    # "gpu_pallas" force one.
    kernel: str = "auto"
    lambda_value: float = 5.0
    tau_b_value: float = 5.0
    memory_tau_min: float = 1.0
    memory_tau_max: float = 1000.0
    # tau_m initialised log-spaced over [init_min, init_max] (None: over the bounds above).
    memory_tau_init_min: float | None = None
    memory_tau_init_max: float | None = None
    delta_t: float = 1.0
    # "steps": time constants count time steps (delta_t = 1 unless given); "ms": they are in
    # milliseconds and the trainer sets delta_t to the data's bin width (docs/science.md §4).
    time_unit: str = "steps"
    learn_memory_tau: bool = True
    # arch "elm_neuron": one reference-port ELM neuron (docs/science.md §2) whose readout gives
    # the logits (num_output = num_classes, no decoder); num_branches x synapses_per_branch
    # synapses when routed (Branch-ELM: "neuronio_routing"), one synapse per input for routing
    # "none".
    routing: str = "none"
    synapses_per_branch: int = 1
    mlp_activation: str = "relu"
    neuron_version: str = "v2"
    # arch "lstm": chrono initialisation of the gate biases for dependencies of up to
    # chrono_t_max steps (Tallec & Ollivier 2018; the Chrono-LSTM); None: flax's default.
    chrono_t_max: float | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r} is invalid: must be one of {ARCHS}")
        tasks.task_kind(self.task)  # ValueError naming the valid tasks
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}={value!r} is invalid: must be an integer")
            # The reference neuron allows mlp_num_layers = 0: one linear layer (docs/science.md §2).
            zero_ok = name == "wiring_seed" or (name, self.arch) == ("mlp_num_layers", "elm_neuron")
            if value < (0 if zero_ok else 1):
                low = 0 if zero_ok else 1
                raise ValueError(f"{name}={value!r} is invalid: must be >= {low}")
        if self.mlp_hidden_size is not None and (
            not isinstance(self.mlp_hidden_size, int) or self.mlp_hidden_size < 1
        ):
            raise ValueError(
                f"mlp_hidden_size={self.mlp_hidden_size!r} is invalid: must be None or an int >= 1"
            )
        for name in _POSITIVE_FLOATS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}={value!r} is invalid: must be a number > 0")
        for name in _NONNEGATIVE_FLOATS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name}={value!r} is invalid: must be a number >= 0")
        check_memory_tau_bounds(self.memory_tau_min, self.memory_tau_max)
        if self.time_unit not in TIME_UNITS:
            raise ValueError(
                f"time_unit={self.time_unit!r} is invalid: must be one of {TIME_UNITS}"
            )
        init = (self.memory_tau_init_min, self.memory_tau_init_max)
        if (init[0] is None) != (init[1] is None):
            raise ValueError(
                f"memory_tau_init_min={init[0]!r}, memory_tau_init_max={init[1]!r}: give both or "
                "neither (neither: tau_m is initialised over [memory_tau_min, memory_tau_max])"
            )
        if init[0] is not None and not (
            self.memory_tau_min <= init[0] < init[1] <= self.memory_tau_max
        ):
            raise ValueError(
                f"memory_tau_init_min={init[0]!r}, memory_tau_init_max={init[1]!r} is invalid: "
                f"must satisfy memory_tau_min={self.memory_tau_min!r} <= init_min < init_max <= "
                f"memory_tau_max={self.memory_tau_max!r}"
            )
        if self.connectivity not in CONNECTIVITIES:
            raise ValueError(
                f"connectivity={self.connectivity!r} is invalid: must be one of {CONNECTIVITIES}"
            )
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout={self.layout!r} is invalid: must be one of {LAYOUTS}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel={self.kernel!r} is invalid: must be one of {KERNELS}")
        if isinstance(self.remat_chunk, bool) or not isinstance(self.remat_chunk, int):
            raise ValueError(f"remat_chunk={self.remat_chunk!r} is invalid: must be an integer")
        if self.remat_chunk < 0:
            raise ValueError(
                f"remat_chunk={self.remat_chunk!r} is invalid: must be 0 (off) or >= 1 steps"
            )
        self.task_kind.check_sizes(self.input_dim, self.num_classes)
        if self.arch == "elm_neuron":
            neuron_config_of(self)  # raises ValueError naming the field
        if self.chrono_t_max is not None and (
            self.arch != "lstm" or not isinstance(self.chrono_t_max, (int, float))
            or not self.chrono_t_max > 2
        ):  # fmt: skip
            raise ValueError(
                f"chrono_t_max={self.chrono_t_max!r} is invalid for arch={self.arch!r}: must be "
                "None, or a number of steps > 2 with arch='lstm'"
            )
        if self.arch == "elm":
            validate_wiring_args(
                num_neurons=self.num_neurons,
                synapses_per_neuron=self.synapses_per_neuron,
                num_branches=self.num_branches,
                external_dim=self.external_dim,
                recurrent_fraction=self.recurrent_fraction,
            )

    @property
    def memory_tau_init(self) -> tuple[float, float] | None:
        """(init_min, init_max) of the tau_m initialisation, or None (over the bounds)."""
        if self.memory_tau_init_min is None:
            return None
        return (float(self.memory_tau_init_min), float(self.memory_tau_init_max))

    @property
    def task_kind(self) -> tasks.TaskKind:
        """The object of `task` (elm_jax.tasks): shapes, loss, metrics, input-blind baseline."""
        return tasks.task_kind(self.task)

    @property
    def external_dim(self) -> int:
        """D_ext: width of the encoded input (input_dim for classification, embed_dim for lm)."""
        return self.task_kind.external_dim(self.input_dim, self.embed_dim)

    @property
    def hidden_size(self) -> int:
        """d_mlp: the MLP width (``mlp_hidden_size`` or 2 d_m)."""
        return self.mlp_hidden_size or 2 * self.num_memory

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any] | Any) -> ModelConfig:
        """Builds a validated config from a mapping or ConfigDict; unknown keys are an error."""
        if hasattr(mapping, "to_dict"):
            mapping = mapping.to_dict()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig fields {unknown}: valid fields are {sorted(known)}"
            )
        values = dict(mapping)
        for name in (*_INT_FIELDS, "mlp_hidden_size"):
            value = values.get(name)
            # Configs written as 1e3 arrive as floats; accept them when integral.
            if isinstance(value, float) and value.is_integer():
                values[name] = int(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (round-trips through `from_dict`)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


def neuron_config_of(cfg: ModelConfig) -> NeuronConfig:
    """The reference neuron's `NeuronConfig` of an ``arch="elm_neuron"`` model (validated)."""
    if cfg.routing not in ROUTINGS:
        raise ValueError(f"routing={cfg.routing!r} is invalid: must be one of {ROUTINGS}")
    problems = [
        f"{name}={value!r} (must be {want!r})"
        for name, value, want in (
            ("num_neurons", cfg.num_neurons, 1),
            ("memory_tau_init_min", cfg.memory_tau_init_min, None),
        )
        if value != want
    ]
    if cfg.task_kind.token_inputs:
        feature_kinds = tasks.kind_names(lambda kind: not kind.token_inputs)
        problems.append(f"task={cfg.task!r} (must be {feature_kinds})")
    if problems:
        raise ValueError(f"arch='elm_neuron' is one classifying neuron: {', '.join(problems)}")
    routed = cfg.routing != "none"
    return NeuronConfig(
        num_input=cfg.input_dim, num_output=cfg.num_classes, num_memory=cfg.num_memory,
        lambda_value=cfg.lambda_value, mlp_num_layers=cfg.mlp_num_layers,
        mlp_hidden_size=cfg.mlp_hidden_size, mlp_activation=cfg.mlp_activation,
        tau_b_value=cfg.tau_b_value, tau_s_value=cfg.tau_b_value,
        memory_tau_min=cfg.memory_tau_min, memory_tau_max=cfg.memory_tau_max,
        learn_memory_tau=cfg.learn_memory_tau,
        num_branches=cfg.num_branches if routed else None,
        synapses_per_branch=cfg.synapses_per_branch if routed else 1,
        input_to_synapse_routing=cfg.routing if routed else None,
        delta_t=cfg.delta_t, version=cfg.neuron_version,
    )  # fmt: skip


def build_core(cfg: ModelConfig) -> nn.Module:
    """The recurrent core of ``cfg``: `ELMNetwork` or a baseline layer, named ``core``."""
    d_ext = cfg.external_dim
    if cfg.arch == "elm":
        return ELMNetwork(
            num_neurons=cfg.num_neurons,
            num_memory=cfg.num_memory,
            synapses_per_neuron=cfg.synapses_per_neuron,
            external_dim=d_ext,
            num_branches=cfg.num_branches,
            mlp_num_layers=cfg.mlp_num_layers,
            mlp_hidden_size=cfg.mlp_hidden_size,
            recurrent_fraction=cfg.recurrent_fraction,
            wiring_seed=cfg.wiring_seed,
            connectivity=cfg.connectivity,
            layout=cfg.layout,
            remat_chunk=cfg.remat_chunk,
            kernel=cfg.kernel,
            lambda_value=cfg.lambda_value,
            tau_b_value=cfg.tau_b_value,
            memory_tau_min=cfg.memory_tau_min,
            memory_tau_max=cfg.memory_tau_max,
            memory_tau_init=cfg.memory_tau_init,
            learn_memory_tau=cfg.learn_memory_tau,
            delta_t=cfg.delta_t,
            name="core",
        )
    if cfg.arch == "elm_neuron":
        fields = dataclasses.asdict(neuron_config_of(cfg))
        return ELMNeuron(**fields, routing_seed=cfg.wiring_seed, name="core")
    if cfg.arch == "lstm" and cfg.chrono_t_max is not None:
        return ChronoLSTMLayer(cfg.num_neurons, d_ext, float(cfg.chrono_t_max), name="core")
    if cfg.arch == "lstm":
        return LSTMLayer(cfg.num_neurons, d_ext, name="core")
    if cfg.arch == "gru":
        return GRULayer(cfg.num_neurons, d_ext, name="core")
    return LeakyLayer(
        cfg.num_neurons,
        d_ext,
        tau_min=cfg.memory_tau_min,
        tau_max=cfg.memory_tau_max,
        delta_t=cfg.delta_t,
        name="core",
    )


class TaskModel(nn.Module):
    """Encoder -> recurrent core -> per-step linear decoder."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, inputs: Array, carry: Any = None) -> tuple[Array, Any]:
        """``inputs [b, t, input_dim]`` float or ``[b, t]`` int -> ``(logits [b, t, C], carry)``."""
        cfg = self.cfg
        cfg.task_kind.check_inputs(inputs, cfg.input_dim)
        if cfg.task_kind.token_inputs:
            e = nn.Embed(cfg.input_dim, cfg.embed_dim, name="encoder")(inputs)
        else:
            e = inputs.astype(jnp.float32)
        if cfg.arch == "elm_neuron":  # the neuron's own readout is the classifier
            return build_core(cfg)(e), {}
        y, carry = build_core(cfg)(e, carry)
        logits = nn.Dense(cfg.num_classes, name="decoder")(y)
        return logits, carry


def elm_kernel_ran(cfg: ModelConfig) -> str | None:
    """What the ELM recurrence of ``cfg`` runs on the default backend: "cpu_fused", "gpu_pallas"
    or "xla" (None for other architectures), for the records of a run."""
    if cfg.arch != "elm":
        return None
    macs = elm_macs_per_neuron(
        num_memory=cfg.num_memory, synapses_per_neuron=0, hidden_size=cfg.mlp_hidden_size,
        num_branches=cfg.num_branches, mlp_num_layers=cfg.mlp_num_layers,
    )  # fmt: skip
    return resolve_kernel(cfg.kernel, cfg.mlp_num_layers + 1, neuron_macs=macs)


def build_model(cfg: ModelConfig) -> nn.Module:
    """The Flax model of ``cfg``; call ``model.apply(variables, inputs, carry=None)``."""
    if not isinstance(cfg, ModelConfig):
        raise ValueError(
            f"cfg={type(cfg).__name__} is invalid: expected ModelConfig (use from_dict)"
        )
    return TaskModel(cfg)


def initial_carry(cfg: ModelConfig, batch_size: int) -> Any:
    """The zero recurrent state for ``batch_size`` streams (float32)."""
    if cfg.arch == "elm":
        return zero_carry(
            batch_size=batch_size,
            num_neurons=cfg.num_neurons,
            num_memory=cfg.num_memory,
            num_branches=cfg.num_branches,
        )
    if cfg.arch == "lstm":
        return lstm_zero_carry(batch_size, cfg.num_neurons)
    if cfg.arch == "elm_neuron":
        return {}  # the neuron classifies whole sequences; nothing is carried between them
    return {"h": jnp.zeros((batch_size, cfg.num_neurons), jnp.float32)}
