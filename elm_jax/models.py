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
from elm_jax.network.config import CONNECTIVITIES, NETWORK_LAYOUTS, NetworkConfig
from elm_jax.network.dynamics import zero_carry
from elm_jax.network.fused import KERNELS, resolve_kernel
from elm_jax.network.layers import ELMNetwork
from elm_jax.neuron.config import NeuronConfig
from elm_jax.neuron.dynamics import kernel_ran as neuron_kernel_ran
from elm_jax.neuron.layers import ELMNeuron
from elm_jax.ops import (
    check_integer,
    check_memory_tau_bounds,
    check_memory_tau_init,
    check_number,
)

Array = jax.Array

ARCHS = ("elm", "lstm", "gru", "leaky", "elm_neuron")
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
_NONNEGATIVE_FLOATS = ("tau_b_value", "tau_s_value", "memory_tau_min")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of one task model (plain data; validated on construction).

    The ELM architectures' settings are those of the config their core module takes, under the
    same names: `NetworkConfig` (arch "elm", `elm_jax.network.config`) and `NeuronConfig` (arch
    "elm_neuron", `elm_jax.neuron.config`). Construction builds that config once (it validates
    its fields; `elm_config`); this class validates the rest.

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
    # What runs the ELM recurrence (NetworkConfig.kernel; for arch "elm_neuron" its memory loop).
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
    # the logits (num_input = input_dim, num_output = num_classes, no decoder); num_branches x
    # synapses_per_branch synapses when routed (Branch-ELM: "neuronio_routing"), one synapse
    # (and branch) per input for routing "none". tau_s_value: the v1 neuron's synaptic
    # timescale (v2 and the network: tau_b_value).
    routing: str = "none"
    synapses_per_branch: int = 1
    mlp_activation: str = "relu"
    neuron_version: str = "v2"
    tau_s_value: float = 5.0
    # arch "lstm": chrono initialisation of the gate biases for dependencies of up to
    # chrono_t_max steps (Tallec & Ollivier 2018; the Chrono-LSTM); None: flax's default.
    chrono_t_max: float | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r} is invalid: must be one of {ARCHS}")
        tasks.task_kind(self.task)  # ValueError naming the valid tasks
        owned = set(self._elm_fields())  # validated by the ELM config built below
        for name in _INT_FIELDS:
            if name not in owned:
                check_integer(name, getattr(self, name), 0 if name == "wiring_seed" else 1)
        if (
            "mlp_hidden_size" not in owned
            and self.mlp_hidden_size is not None
            and (not isinstance(self.mlp_hidden_size, int) or self.mlp_hidden_size < 1)
        ):
            raise ValueError(
                f"mlp_hidden_size={self.mlp_hidden_size!r} is invalid: must be None or an int >= 1"
            )
        for name in _POSITIVE_FLOATS + _NONNEGATIVE_FLOATS:
            if name not in owned:
                check_number(name, getattr(self, name), positive=name in _POSITIVE_FLOATS)
        if "memory_tau_min" not in owned:
            check_memory_tau_bounds(self.memory_tau_min, self.memory_tau_max)
        if "memory_tau_init_min" not in owned:
            check_memory_tau_init(
                self.memory_tau_init_min, self.memory_tau_init_max, self.memory_tau_min,
                self.memory_tau_max,
            )  # fmt: skip
        if self.time_unit not in TIME_UNITS:
            raise ValueError(
                f"time_unit={self.time_unit!r} is invalid: must be one of {TIME_UNITS}"
            )
        choices = (
            ("connectivity", CONNECTIVITIES),
            ("layout", NETWORK_LAYOUTS),
            ("kernel", KERNELS),
        )
        for name, valid in choices:
            if name not in owned and getattr(self, name) not in valid:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is invalid: must be one of {valid}"
                )
        if "remat_chunk" not in owned:
            check_integer("remat_chunk", self.remat_chunk, 0)
        self.task_kind.check_sizes(self.input_dim, self.num_classes)
        if self.arch == "elm_neuron":
            self._check_single_neuron()
        self._check_timescale_field()
        if self.chrono_t_max is not None and (
            self.arch != "lstm" or not isinstance(self.chrono_t_max, (int, float))
            or not self.chrono_t_max > 2
        ):  # fmt: skip
            raise ValueError(
                f"chrono_t_max={self.chrono_t_max!r} is invalid for arch={self.arch!r}: must be "
                "None, or a number of steps > 2 with arch='lstm'"
            )
        object.__setattr__(self, "_elm_config", self._build_elm_config())

    def _elm_fields(self) -> dict[str, Any]:
        """This config's fields that the ELM core config of `arch` takes (same names)."""
        if self.arch == "elm":
            core = NetworkConfig
        elif self.arch == "elm_neuron":
            core = NeuronConfig
        else:
            return {}
        names = {f.name for f in dataclasses.fields(core)} & set(MODEL_FIELDS)
        if self.arch == "elm_neuron" and self.routing == "none":
            # Without routing the neuron has one synapse and one branch per input.
            names -= {"num_branches", "synapses_per_branch"}
        return {name: getattr(self, name) for name in sorted(names)}

    def _check_timescale_field(self) -> None:
        """One dendritic timescale per dynamics: the v1 neuron reads tau_s_value, the v2 neuron
        and the network tau_b_value. The other stays at its default, so a value set for the
        wrong dynamics is refused, never silently unused."""
        if self.arch not in ("elm", "elm_neuron"):
            return
        v1 = self.arch == "elm_neuron" and self.neuron_version == "v1"
        unused, used = ("tau_b_value", "tau_s_value") if v1 else ("tau_s_value", "tau_b_value")
        default = _FIELD_DEFAULTS[unused]
        if getattr(self, unused) != default:
            what = "the v1 neuron" if v1 else f"arch={self.arch!r} (v2 dynamics)"
            raise ValueError(
                f"{unused}={getattr(self, unused)!r} has no effect on {what}: its timescale is "
                f"{used}; set {used} and leave {unused} at {default!r}"
            )

    def _check_single_neuron(self) -> None:
        """What arch "elm_neuron" needs beyond its `NeuronConfig`: one neuron on features."""
        problems = [
            f"{name}={value!r} (must be {want!r})"
            for name, value, want in (
                ("num_neurons", self.num_neurons, 1),
                ("memory_tau_init_min", self.memory_tau_init_min, None),
            )
            if value != want
        ]
        if self.task_kind.token_inputs:
            feature_kinds = tasks.kind_names(lambda kind: not kind.token_inputs)
            problems.append(f"task={self.task!r} (must be {feature_kinds})")
        if problems:
            raise ValueError(f"arch='elm_neuron' is one classifying neuron: {', '.join(problems)}")

    def _build_elm_config(self) -> NetworkConfig | NeuronConfig | None:
        fields = self._elm_fields()
        if self.arch == "elm":
            return NetworkConfig(**fields, external_dim=self.external_dim)
        if self.arch == "elm_neuron":
            return NeuronConfig(**fields, num_input=self.input_dim, num_output=self.num_classes)
        return None

    @property
    def elm_config(self) -> NetworkConfig | NeuronConfig | None:
        """The validated config of the ELM core, built once on construction: `NetworkConfig`
        (arch "elm"), `NeuronConfig` (arch "elm_neuron"); None for the baselines."""
        return self._elm_config

    @property
    def task_kind(self) -> tasks.TaskKind:
        """The object of `task` (elm_jax.tasks): shapes, loss, metrics, input-blind baseline."""
        return tasks.task_kind(self.task)

    @property
    def external_dim(self) -> int:
        """D_ext: width of the encoded input (input_dim for classification, embed_dim for lm)."""
        return self.task_kind.external_dim(self.input_dim, self.embed_dim)

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


MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def build_core(cfg: ModelConfig) -> nn.Module:
    """The recurrent core of ``cfg``: `ELMNetwork` or a baseline layer, named ``core``."""
    d_ext = cfg.external_dim
    if cfg.arch == "elm":
        return ELMNetwork(cfg.elm_config, name="core")
    if cfg.arch == "elm_neuron":
        return ELMNeuron(cfg.elm_config, kernel=cfg.kernel, name="core")
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


class DecoderParams(nn.Module):
    """The per-step decoder's parameters, as `nn.Dense(features)` creates them (``kernel``
    [in_features, features] by LeCun normal, ``bias`` zeros), handed to an ELM network core,
    which applies them itself (on the fused kernel, from its own output layout)."""

    features: int

    @nn.compact
    def __call__(self, in_features: int) -> tuple[Array, Array]:
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (in_features, self.features), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        return kernel, bias


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
        if cfg.arch == "elm":  # the network applies the decoder (variables as nn.Dense's)
            readout = DecoderParams(cfg.num_classes, name="decoder")(cfg.num_neurons)
            return build_core(cfg)(e, carry, readout=readout)
        y, carry = build_core(cfg)(e, carry)
        logits = nn.Dense(cfg.num_classes, name="decoder")(y)
        return logits, carry


def elm_kernel_ran(cfg: ModelConfig) -> str | None:
    """What the ELM recurrence of ``cfg`` runs on the default backend: "cpu_fused", "gpu_pallas"
    or "xla" (None for other architectures), for the records of a run."""
    if cfg.arch == "elm_neuron":
        return neuron_kernel_ran(cfg.elm_config, cfg.kernel)
    if cfg.arch != "elm":
        return None
    net = cfg.elm_config
    return resolve_kernel(net.kernel, net.mlp_num_layers + 1, neuron_macs=net.neuron_macs)


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
