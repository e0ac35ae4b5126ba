"""The ELM neuron as pure functions (SPEC §2): configuration, routing, decays, step and scan.

No Flax here. A neuron is described by a frozen `NeuronConfig` and a flat mapping `tree` of
arrays with the names of docs/interfaces.md (`proto_w_s`, `proto_tau_m`, `mlp`, `w_y`, `tau_b` or
`tau_s`, `routing_indices`, `routing_mask`), i.e. the `params` and `constants` collections of
`elm_jax.layers.ELMNeuron` merged into one dict.

Axes: b batch, t time, i input, s synapse, d branch, m memory, h MLP hidden, o output.

The fast path (`scan`) uses that everything before the MLP is linear in the input:
routing, synapse weights and branch sum are one matrix [i, d]; the branch trace (v2, and v1 when
the synaptic time constants are equal within each branch) is an elementwise linear recurrence
computed for the whole sequence before the memory scan; the branch part of the MLP's first layer
is therefore one matrix product for all t. Only the memory recurrence, which is nonlinear, does
matrix products inside `lax.scan`.
`step` is the literal per-step equation of the reference and serves as the oracle for `scan`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"relu": jax.nn.relu, "silu": jax.nn.silu}
ROUTINGS = (None, "random_routing", "neuronio_routing")
VERSIONS = ("v1", "v2")
# The reference clamps every timescale from below before dividing by it.
TAU_FLOOR = 1e-6
# Scaled tanh of LeCun et al. used by the reference for the memory update.
TANH_SCALE, TANH_SLOPE = 1.7159, 2.0 / 3.0


def effective_tau_max(tau_min: float, tau_max: float, version: str = "v2") -> float:
    """The upper tau_m bound the reference uses: v2 widens it to at least tau_min + 3e-6."""
    return max(tau_min + 3e-6, tau_max) if version == "v2" else tau_max


def check_memory_tau_bounds(tau_min: float, tau_max: float, version: str = "v2") -> None:
    """Accepts exactly the bounds the reference handles (SPEC §4); raises ValueError otherwise.

    tau_min = 0 is legal (every decay clamps tau at 1e-6). v2 widens a tau_max within 3e-6 of
    tau_min; a tau_max below tau_min would be replaced silently, so it is refused. v1 does not
    widen: its log-spaced initialisation needs tau_max - tau_min > 1e-6 to stay finite.
    """
    if not tau_min >= 0:
        raise ValueError(f"memory_tau_min={tau_min!r}: must be >= 0")
    if not tau_max >= tau_min:
        raise ValueError(f"memory_tau_max={tau_max!r}: must be >= memory_tau_min={tau_min!r}")
    if version != "v2" and not (tau_max - 1e-6) - tau_min > 0:
        raise ValueError(
            f"memory_tau_max={tau_max!r}: v1 needs memory_tau_max > memory_tau_min + 1e-6 "
            f"(memory_tau_min={tau_min!r}); its tau_m initialisation is undefined otherwise"
        )


@dataclasses.dataclass(frozen=True)
class NeuronConfig:
    """Validated configuration of one ELM neuron (the reference's constructor arguments).

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
    num_branch: int | None = None
    num_synapse_per_branch: int = 1
    input_to_synapse_routing: str | None = None
    delta_t: float = 1.0
    version: str = "v2"

    def __post_init__(self) -> None:
        def positive_int(field: str, value: Any, minimum: int = 1) -> None:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < minimum
            ):
                raise ValueError(f"{field}={value!r}: must be an integer >= {minimum}")

        if self.version not in VERSIONS:
            raise ValueError(f"version={self.version!r}: valid choices are {VERSIONS}")
        for field in ("num_input", "num_output", "num_memory", "num_synapse_per_branch"):
            positive_int(field, getattr(self, field))
        positive_int("mlp_num_layers", self.mlp_num_layers, 0)
        if self.mlp_hidden_size is not None:
            positive_int("mlp_hidden_size", self.mlp_hidden_size)
        if self.num_branch is not None:
            positive_int("num_branch", self.num_branch)
        if self.mlp_activation not in ACTIVATIONS:
            raise ValueError(
                f"mlp_activation={self.mlp_activation!r}: valid choices are {sorted(ACTIVATIONS)}"
            )
        if self.input_to_synapse_routing not in ROUTINGS:
            raise ValueError(
                f"input_to_synapse_routing={self.input_to_synapse_routing!r}: "
                f"valid choices are {ROUTINGS}"
            )
        check_memory_tau_bounds(self.memory_tau_min, self.memory_tau_max, self.version)
        if not self.delta_t > 0:
            raise ValueError(f"delta_t={self.delta_t!r}: must be > 0")
        if not self.tau_b_value >= 0:
            raise ValueError(f"tau_b_value={self.tau_b_value!r}: must be >= 0")
        tau_s = np.atleast_1d(np.asarray(self.tau_s_value, dtype=np.float64))
        if tau_s.ndim != 1 or not np.all(tau_s >= 0):
            raise ValueError(f"tau_s_value={self.tau_s_value!r}: must be >= 0 (a number or [s])")
        if tau_s.size not in (1, self.num_synapse):
            raise ValueError(
                f"tau_s_value has {tau_s.size} entries: give one number or "
                f"num_synapse={self.num_synapse} values"
            )
        routing = self.input_to_synapse_routing
        if routing is None and self.num_synapse != self.num_input:
            raise ValueError(
                f"num_branch * num_synapse_per_branch = {self.num_synapse} != num_input = "
                f"{self.num_input} without routing; valid choices: input_to_synapse_routing in "
                f"{ROUTINGS[1:]}, or num_branch * num_synapse_per_branch == num_input"
            )
        if routing == "neuronio_routing":
            stride = math.ceil(self.num_input / self.branches)
            if stride > self.num_synapse_per_branch:
                raise ValueError(
                    f"num_synapse_per_branch={self.num_synapse_per_branch}: neuronio_routing "
                    f"needs at least ceil(num_input / num_branch) = {stride} so every input "
                    "reaches a branch"
                )

    @property
    def branches(self) -> int:
        """d: the number of branches (num_input when not given, as in the reference)."""
        return self.num_input if self.num_branch is None else self.num_branch

    @property
    def num_synapse(self) -> int:
        """s = d * synapses per branch."""
        return self.branches * self.num_synapse_per_branch

    @property
    def hidden(self) -> int:
        """h: MLP width (2 * num_memory when not given)."""
        return self.mlp_hidden_size if self.mlp_hidden_size else 2 * self.num_memory

    @property
    def tau_max(self) -> float:
        """The upper timescale bound actually used (v2 of the reference widens a degenerate one)."""
        return effective_tau_max(self.memory_tau_min, self.memory_tau_max, self.version)

    @property
    def tau_s_array(self) -> np.ndarray:
        """tau_s [s] as float64 (v1)."""
        tau_s = np.atleast_1d(np.asarray(self.tau_s_value, dtype=np.float64))
        return np.broadcast_to(tau_s, (self.num_synapse,)).copy()

    @property
    def per_synapse_trace(self) -> bool:
        """v1 with synaptic timescales that differ inside a branch: one trace per synapse."""
        if self.version != "v1":
            return False
        tau = self.tau_s_array.reshape(self.branches, self.num_synapse_per_branch)
        return bool(np.any(tau != tau[:, :1]))

    @property
    def mlp_sizes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each MLP layer dense_0 .. dense_L."""
        sizes = [self.branches + self.num_memory] + [self.hidden] * self.mlp_num_layers
        return list(zip(sizes, sizes[1:] + [self.num_memory], strict=True))

    @property
    def num_params(self) -> int:
        """Trainable parameter count (SPEC §2)."""
        return num_params(
            self.num_input,
            self.num_output,
            self.num_memory,
            mlp_num_layers=self.mlp_num_layers,
            mlp_hidden_size=self.mlp_hidden_size,
            num_branch=self.num_branch,
            num_synapse_per_branch=self.num_synapse_per_branch,
            learn_memory_tau=self.learn_memory_tau,
        )


def num_params(
    num_input: int,
    num_output: int,
    num_memory: int,
    *,
    mlp_num_layers: int = 1,
    mlp_hidden_size: int | None = None,
    num_branch: int | None = None,
    num_synapse_per_branch: int = 1,
    learn_memory_tau: bool = False,
) -> int:
    """Trainable parameters of one ELM neuron, SPEC §2.

    `d·k` synapse weights + MLP `(d + m)·h + h + (L - 1)(h² + h) + h·m + m` + readout `m·o + o`
    (+ `m` when tau_m is learned). With L = 0 the MLP is one layer `(d + m)·m + m`.
    NeuronIO Branch-ELM (1278 inputs, 45 × 100 synapses, 2 outputs): `4502 + 95·m + 4·m²`.
    """
    d = num_input if num_branch is None else num_branch
    m, h = num_memory, (mlp_hidden_size if mlp_hidden_size else 2 * num_memory)
    if mlp_num_layers == 0:
        mlp = (d + m) * m + m
    else:
        mlp = (d + m) * h + h + (mlp_num_layers - 1) * (h * h + h) + h * m + m
    return (
        d * num_synapse_per_branch
        + mlp
        + m * num_output
        + num_output
        + (m if learn_memory_tau else 0)
    )


# ----------------------------------------------------------------------------- initialisation


def scaled_sigmoid(x: jax.Array, lower: float, upper: float) -> jax.Array:
    """(upper - lower) * sigmoid(x) + lower: maps the real line onto (lower, upper)."""
    return (upper - lower) * jax.nn.sigmoid(x) + lower


def inverse_scaled_sigmoid(tau: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Inverse of `scaled_sigmoid`, clamped 1e-6 inside the bounds like the reference (float64)."""
    tau = np.clip(np.asarray(tau, dtype=np.float64), lower + 1e-6, upper - 1e-6)
    return np.log((tau - lower) / (upper - tau))


def log_spaced_proto_tau(
    num_memory: int,
    tau_min: float,
    tau_max: float,
    init_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """proto_tau_m [m] whose tau_m lie log-spaced over [lo + 1e-6, hi - 1e-6].

    (lo, hi) is `init_range`, by default the bounds (tau_min, tau_max) as in the reference;
    `tau_max` is the bound actually used (`effective_tau_max`). The reference's offsets make
    tau_min = 0 legal (the first timescale is 1e-6). Float64, and finite: the clamp is evaluated
    in float64, where the float32 reference rounds the top value to +inf.
    """
    lo, hi = init_range if init_range is not None else (tau_min, tau_max)
    tau = np.logspace(math.log10(lo + 1e-6), math.log10(hi - 1e-6), num_memory)
    return inverse_scaled_sigmoid(tau, tau_min, tau_max)


def init_proto_tau_m(cfg: NeuronConfig) -> np.ndarray:
    """proto_tau_m [m] of a neuron config (see `log_spaced_proto_tau`)."""
    return log_spaced_proto_tau(cfg.num_memory, cfg.memory_tau_min, cfg.tau_max)


def interlocking_indices(num_input: int) -> np.ndarray:
    """Interleaves the excitatory first half and inhibitory second half: 0, h, 1, h+1, ..."""
    steps = np.arange(num_input)
    return (steps % 2) * (num_input // 2) + steps // 2


def neuronio_routing(
    num_input: int, num_branch: int, num_synapse_per_branch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference `neuronio_routing`: overlapping windows over the interleaved inputs.

    Branch j reads interleaved positions j·stride .. j·stride + k - 1 with stride
    ceil(num_input / num_branch); positions past the end are clamped to the last input and masked.
    Returns (indices [s] int32, mask [s] bool).
    """
    stride = math.ceil(num_input / num_branch)
    window = np.arange(num_branch)[:, None] * stride + np.arange(num_synapse_per_branch)[None, :]
    mask = window < num_input
    window = np.minimum(window, num_input - 1)
    indices = interlocking_indices(num_input)[window.reshape(-1)]
    return indices.astype(np.int32), mask.reshape(-1)


def random_routing(num_input: int, num_synapse: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synapse sources drawn uniformly with replacement from `seed`; all synapses valid."""
    indices = np.random.default_rng(seed).integers(0, num_input, size=num_synapse)
    return indices.astype(np.int32), np.ones(num_synapse, dtype=bool)


def make_routing(cfg: NeuronConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(indices, mask) for the configured routing, or None without routing."""
    if cfg.input_to_synapse_routing == "neuronio_routing":
        return neuronio_routing(cfg.num_input, cfg.branches, cfg.num_synapse_per_branch)
    if cfg.input_to_synapse_routing == "random_routing":
        return random_routing(cfg.num_input, cfg.num_synapse, seed)
    return None


# ----------------------------------------------------------------------------- derived arrays


class Prepared(NamedTuple):
    """Everything the recurrence needs, computed once from the parameters (outside any scan)."""

    in_to_branch: jax.Array | None  # [i, d] routing · relu(w) · branch sum (routed, merged)
    syn_index: jax.Array  # [s] input feeding each synapse
    syn_weight: jax.Array  # [s] relu(w_s) · mask
    kappa_syn: jax.Array  # [s] per-synapse decay (per-synapse path) or [d] branch decay
    kappa_m: jax.Array  # [m]
    mem_gain: jax.Array  # [m] (1 - kappa_lambda) in v2, lambda (1 - kappa_m) in v1
    mlp: tuple[tuple[jax.Array, jax.Array], ...]  # (kernel [in, out], bias [out]) per layer
    readout: tuple[jax.Array, jax.Array]  # kernel [m, o], bias [o]


def clamp_tau(tau: jax.Array) -> jax.Array:
    """max(tau, 1e-6) with the reference's gradient (torch.clamp passes it at the bound too)."""
    return jnp.where(tau >= TAU_FLOOR, tau, TAU_FLOOR)


def decay(tau: jax.Array, delta_t: float, rate: float = 1.0) -> jax.Array:
    """exp(-Δt · rate / max(tau, 1e-6)); rate = λ gives the reference's kappa_lambda."""
    return jnp.exp(-delta_t * rate / clamp_tau(tau))


def input_to_branch_matrix(
    syn_index: jax.Array, syn_weight: jax.Array, num_input: int, num_branch: int
) -> jax.Array:
    """The linear map [i, d]: entry (i, d) sums the weights of branch d's synapses reading input i."""
    branch = jnp.arange(syn_weight.shape[0]) // (syn_weight.shape[0] // num_branch)
    zeros = jnp.zeros((num_input, num_branch), syn_weight.dtype)
    return zeros.at[syn_index, branch].add(syn_weight)


def prepare(tree: Mapping[str, Any], cfg: NeuronConfig, state_dtype: Any) -> Prepared:
    """Decay factors, rectified weights and the input→branch map, in `state_dtype`."""
    as_state = lambda a: jnp.asarray(a, state_dtype)  # noqa: E731
    if cfg.input_to_synapse_routing is None:
        syn_index = jnp.arange(cfg.num_synapse)
        mask = jnp.ones(cfg.num_synapse, state_dtype)
    else:
        syn_index = jnp.asarray(tree["routing_indices"], jnp.int32)
        mask = as_state(tree["routing_mask"])
    syn_weight = jax.nn.relu(as_state(tree["proto_w_s"])) * mask

    tau_m = scaled_sigmoid(as_state(tree["proto_tau_m"]), cfg.memory_tau_min, cfg.tau_max)
    kappa_m = decay(tau_m, cfg.delta_t)
    if cfg.version == "v2":
        mem_gain = 1.0 - decay(tau_m, cfg.delta_t, cfg.lambda_value)
        kappa_syn = decay(as_state(tree["tau_b"]), cfg.delta_t)
    else:
        mem_gain = cfg.lambda_value * (1.0 - kappa_m)
        kappa_syn = decay(as_state(tree["tau_s"]), cfg.delta_t)
        if not cfg.per_synapse_trace:
            # Equal timescales inside a branch: the sum of its traces is one trace of the sum.
            kappa_syn = kappa_syn.reshape(cfg.branches, cfg.num_synapse_per_branch)[:, 0]
    in_to_branch = None
    if cfg.input_to_synapse_routing is not None and not cfg.per_synapse_trace:
        in_to_branch = input_to_branch_matrix(syn_index, syn_weight, cfg.num_input, cfg.branches)
    mlp = tuple(
        (tree["mlp"][f"dense_{j}"]["kernel"], tree["mlp"][f"dense_{j}"]["bias"])
        for j in range(cfg.mlp_num_layers + 1)
    )
    readout = (tree["w_y"]["kernel"], tree["w_y"]["bias"])
    return Prepared(in_to_branch, syn_index, syn_weight, kappa_syn, kappa_m, mem_gain, mlp, readout)


def _memory_update(
    first_layer_out: jax.Array, prep: Prepared, cfg: NeuronConfig, m_prev: jax.Array
) -> jax.Array:
    """Given the first MLP layer's pre-activation, the rest of the MLP and the memory update."""
    act = ACTIVATIONS[cfg.mlp_activation]
    z = first_layer_out
    for kernel, bias in prep.mlp[1:]:
        z = act(z) @ kernel + bias
    delta_m = TANH_SCALE * jnp.tanh(TANH_SLOPE * z)
    return prep.kappa_m * m_prev + prep.mem_gain * delta_m.astype(m_prev.dtype)


# ----------------------------------------------------------------------------- step (oracle)


def initial_state(prep: Prepared, cfg: NeuronConfig, batch: int, state_dtype: Any):
    """Zero state: (synapse or branch trace [b, s|d], memory [b, m])."""
    width = cfg.num_synapse if cfg.per_synapse_trace else cfg.branches
    return (jnp.zeros((batch, width), state_dtype), jnp.zeros((batch, cfg.num_memory), state_dtype))


def step(prep: Prepared, cfg: NeuronConfig, state, x_t: jax.Array):
    """One time step, literally the reference's equations. x_t [b, i].

    Returns (new state, (y_t [b, o], branch_t [b, d], m_t [b, m])).
    """
    trace, m_prev = state
    if cfg.per_synapse_trace:
        trace = prep.kappa_syn * trace + prep.syn_weight * x_t[:, prep.syn_index]
        branch = trace.reshape(x_t.shape[0], cfg.branches, -1).sum(-1)
    else:
        trace = prep.kappa_syn * trace + synaptic_input(prep, cfg, x_t)
        branch = trace
    kernel0, bias0 = prep.mlp[0]
    mlp_in = jnp.concatenate([branch, prep.kappa_m * m_prev], axis=-1)
    m_t = _memory_update(mlp_in @ kernel0 + bias0, prep, cfg, m_prev)
    y_t = m_t @ prep.readout[0] + prep.readout[1]
    return (trace, m_t), (y_t, branch, m_t)


# ----------------------------------------------------------------------------- scan (fast path)


def synaptic_input(prep: Prepared, cfg: NeuronConfig, x: jax.Array) -> jax.Array:
    """The input→branch linear map applied to x [..., i] → [..., d].

    With a routing it is one product with the [i, d] matrix. Without one, the matrix is block
    diagonal (input j feeds only branch j // k), so it is applied as a product and a sum over
    blocks instead of a dense product that would be mostly zeros.
    """
    if prep.in_to_branch is not None:
        return x @ prep.in_to_branch.astype(x.dtype)
    weighted = x * prep.syn_weight.astype(x.dtype)
    return weighted.reshape(*x.shape[:-1], cfg.branches, -1).sum(-1)


def linear_trace(u: jax.Array, kappa: jax.Array, unroll: int = 1) -> jax.Array:
    """c_t = kappa * c_{t-1} + u_t (c_0 = u_0) over the time axis of u [b, t, k], kappa [k].

    Elementwise only, so a plain sequential scan is cheap (on CPU cheaper than the log-depth
    associative scan, forward and backward).
    """

    def body(c_prev, u_t):
        c_t = kappa * c_prev + u_t
        return c_t, c_t

    c0 = jnp.zeros((u.shape[0], u.shape[2]), u.dtype)
    _, c = jax.lax.scan(body, c0, jnp.swapaxes(u, 0, 1), unroll=unroll)
    return jnp.swapaxes(c, 0, 1)


def branch_traces(prep: Prepared, cfg: NeuronConfig, x: jax.Array) -> jax.Array:
    """The branch input of every step, [b, t, d], computed for the whole sequence at once."""
    state = prep.kappa_syn.dtype
    if cfg.per_synapse_trace:
        syn = jnp.take(x, prep.syn_index, axis=-1).astype(state) * prep.syn_weight
        syn = linear_trace(syn, prep.kappa_syn)
        return syn.reshape(*syn.shape[:2], cfg.branches, -1).sum(-1)
    return linear_trace(synaptic_input(prep, cfg, x).astype(state), prep.kappa_syn)


def first_layer_branch_part(
    prep: Prepared, cfg: NeuronConfig, x: jax.Array, cd: Any
) -> tuple[jax.Array, jax.Array]:
    """(branch [b, t, d], pre [t, b, h] = branch · K_b + bias) for the whole sequence.

    Without routing each input feeds one branch, so the trace commutes with the synapse weights:
    trace(x) · (w ⊙ K_b) equals trace(x · w) · K_b exactly, and trace(x) does not depend on any
    trainable parameter. Training then needs one large product backward (for the [i, h] matrix)
    instead of two (for K_b and for the branch input).
    """
    kernel0, bias0 = prep.mlp[0]
    d, k = cfg.branches, cfg.num_synapse_per_branch
    kernel_b = kernel0[:d]
    if cfg.input_to_synapse_routing is None and not cfg.per_synapse_trace:
        state = prep.kappa_syn.dtype
        x_trace = linear_trace(x.astype(state), jnp.repeat(prep.kappa_syn, k))  # [b, t, i]
        in_kernel = prep.syn_weight[:, None].astype(cd) * jnp.repeat(kernel_b.astype(cd), k, 0)
        pre = jnp.einsum("bti,ih->tbh", x_trace.astype(cd), in_kernel) + bias0.astype(cd)
        branch = (x_trace * prep.syn_weight).reshape(*x_trace.shape[:2], d, k).sum(-1)
        return branch, pre
    branch = branch_traces(prep, cfg, x)
    pre = jnp.einsum("btd,dh->tbh", branch.astype(cd), kernel_b.astype(cd)) + bias0.astype(cd)
    return branch, pre


def _memory_forward(pre, mem_kernel, layers, kappa, gain, activation, unroll):
    """The memory recurrence: returns memory [t, b, m] and each layer's pre-activation [t, b, h]."""
    act = ACTIVATIONS[activation]
    cd = pre.dtype

    def body(m_prev, pre_t):
        a = pre_t + m_prev.astype(cd) @ mem_kernel
        pre_acts = [a]
        for kernel, bias in layers:
            a = act(a) @ kernel + bias
            pre_acts.append(a)
        delta = (TANH_SCALE * jnp.tanh(TANH_SLOPE * a)).astype(m_prev.dtype)
        m_t = kappa * m_prev + gain * delta
        return m_t, (m_t, tuple(pre_acts))

    m0 = jnp.zeros((pre.shape[1], kappa.shape[0]), kappa.dtype)
    _, (memory, pre_acts) = jax.lax.scan(body, m0, pre, unroll=unroll)
    return memory, pre_acts


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def memory_scan(
    pre: jax.Array,
    mem_kernel: jax.Array,
    layers: tuple[tuple[jax.Array, jax.Array], ...],
    kappa: jax.Array,
    gain: jax.Array,
    activation: str,
    unroll: int,
) -> jax.Array:
    """m_t = kappa ⊙ m_{t-1} + gain ⊙ 1.7159 tanh(2/3 MLP(pre_t + m_{t-1} K_m)) over t.

    pre [t, b, h] (the branch half of the first layer, bias included), mem_kernel K_m [m, h]
    (kappa_m folded in), layers: the remaining MLP layers. Returns memory [t, b, m].

    Custom gradient: the reverse scan propagates only the activations' cotangents; the
    gradients of the weights are then one product over all (t, b) each, instead of a small
    product accumulated at every step.
    """
    return _memory_forward(pre, mem_kernel, layers, kappa, gain, activation, unroll)[0]


def _memory_scan_fwd(pre, mem_kernel, layers, kappa, gain, activation, unroll):
    memory, pre_acts = _memory_forward(pre, mem_kernel, layers, kappa, gain, activation, unroll)
    return memory, (mem_kernel, layers, kappa, gain, memory, pre_acts)


def _memory_scan_bwd(activation, unroll, residuals, g_memory):
    mem_kernel, layers, kappa, gain, memory, pre_acts = residuals
    act = ACTIVATIONS[activation]
    cd, sd = mem_kernel.dtype, kappa.dtype
    m_prev = jnp.concatenate([jnp.zeros_like(memory[:1]), memory[:-1]], axis=0)

    def body(g_next, inputs):
        g_t, acts_t = inputs
        g_m = g_t + g_next  # total cotangent of m_t
        tanh = jnp.tanh(TANH_SLOPE * acts_t[-1])
        d_a = (g_m * gain).astype(cd) * (TANH_SCALE * TANH_SLOPE) * (1 - tanh * tanh)
        d_acts = [d_a]
        for j in range(len(layers) - 1, -1, -1):
            _, act_vjp = jax.vjp(act, acts_t[j])
            d_a = act_vjp(d_a @ layers[j][0].T)[0]
            d_acts.append(d_a)
        g_prev = g_m * kappa + (d_a @ mem_kernel.T).astype(sd)
        return g_prev, (g_m, tuple(d_acts[::-1]))

    g0 = jnp.zeros_like(memory[0])
    _, (g_ms, d_acts) = jax.lax.scan(
        body, g0, (g_memory.astype(sd), pre_acts), reverse=True, unroll=unroll
    )
    d_mem_kernel = jnp.einsum("tbm,tbh->mh", m_prev.astype(cd), d_acts[0])
    d_layers = tuple(
        (
            jnp.einsum("tbh,tbk->hk", act(pre_acts[j]), d_acts[j + 1]),
            d_acts[j + 1].sum((0, 1)),
        )
        for j in range(len(layers))
    )
    delta = (TANH_SCALE * jnp.tanh(TANH_SLOPE * pre_acts[-1])).astype(sd)
    d_kappa = jnp.sum(g_ms * m_prev, axis=(0, 1))
    d_gain = jnp.sum(g_ms * delta, axis=(0, 1))
    return d_acts[0], d_mem_kernel, d_layers, d_kappa, d_gain


memory_scan.defvjp(_memory_scan_fwd, _memory_scan_bwd)


def scan(
    prep: Prepared,
    cfg: NeuronConfig,
    x: jax.Array,
    *,
    compute_dtype: Any = None,
    unroll: int = 1,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The neuron over a sequence x [b, t, i] → (y [b, t, o], branch [b, t, d], memory [b, t, m]).

    The state (traces, memory) is kept in the dtype of `prep` (float32, or float64 under x64);
    matrix products run in `compute_dtype` (default: that of x).
    """
    cd = compute_dtype or x.dtype
    # Split the first layer: the branch half is one product for all t, the memory half (with
    # kappa_m folded into its rows) is the only product the recurrence has to do per step.
    branch, pre = first_layer_branch_part(prep, cfg, x, cd)
    kernel0 = prep.mlp[0][0]
    d = cfg.branches
    mem_kernel = (prep.kappa_m[:, None] * kernel0[d:].astype(prep.kappa_m.dtype)).astype(cd)
    layers = tuple((k.astype(cd), b.astype(cd)) for k, b in prep.mlp[1:])
    memory = memory_scan(
        pre, mem_kernel, layers, prep.kappa_m, prep.mem_gain, cfg.mlp_activation, unroll
    )  # [t, b, m]
    kernel_y, bias_y = prep.readout
    y = jnp.einsum("tbm,mo->bto", memory.astype(cd), kernel_y.astype(cd)) + bias_y.astype(cd)
    return y, branch, jnp.swapaxes(memory, 0, 1)


def state_dtype_for(*arrays: Any) -> Any:
    """float32, or float64 when x64 is enabled and any input is float64."""
    dtype = jnp.result_type(*arrays, jnp.float32)
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def apply(
    tree: Mapping[str, Any],
    cfg: NeuronConfig,
    x: jax.Array,
    *,
    compute_dtype: Any = None,
    unroll: int = 1,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """prepare + scan: (y [b, t, o], branch [b, t, d], memory [b, t, m])."""
    if x.ndim != 3 or x.shape[-1] != cfg.num_input:
        raise ValueError(f"x has shape {tuple(x.shape)}: expected [batch, time, {cfg.num_input}]")
    state_dtype = state_dtype_for(x, *jax.tree_util.tree_leaves(tree["mlp"]))
    prep = prepare(tree, cfg, state_dtype)
    return scan(prep, cfg, x, compute_dtype=compute_dtype, unroll=unroll)


def loop(tree: Mapping[str, Any], cfg: NeuronConfig, x: jax.Array) -> Sequence[jax.Array]:
    """A Python loop over `step` (slow; the oracle `scan` is tested against)."""
    state_dtype = state_dtype_for(x, *jax.tree_util.tree_leaves(tree["mlp"]))
    prep = prepare(tree, cfg, state_dtype)
    state = initial_state(prep, cfg, x.shape[0], state_dtype)
    outs = []
    for t in range(x.shape[1]):
        state, out = step(prep, cfg, state, x[:, t])
        outs.append(out)
    return tuple(jnp.stack(o, axis=1) for o in zip(*outs, strict=True))
