"""The ELM Network (SPEC §3): N ELM neurons (v2) wired to a pool of external inputs and their own outputs.

Axis legend: ``b`` batch, ``t`` time, ``i`` external channel (D_ext), ``j`` presynaptic neuron,
``n`` neuron, ``s`` synapse, ``d`` branch (d_tree), ``m`` memory unit (d_m), ``h`` MLP hidden unit.

Layout of the computation (STYLE habit 2):

* Wiring (`make_wiring`) is drawn once with NumPy from ``wiring_seed`` so it is identical on every
  process and device, and stored in the ``constants`` collection. Each neuron has exactly ``k_c``
  synapses, ordered ``[external (k_ext) | recurrent (k_rec)]`` and sorted by branch inside each
  block; ``synapse_source`` indexes the pool ``[e_t ; y_{t-1}]`` and ``synapse_branch`` says
  which of the ``d_tree`` branches the synapse feeds.
* Everything that does not depend on ``y_{t-1}`` is done before the scan: decay factors,
  rectified synaptic weights, the synapse-to-branch matrices and the external branch input of
  every neuron for every step (one gather or one matmul over ``[b, t]``).
* The scan body (`network_step`) only does the recurrent synapses, the branch trace, the
  per-neuron MLP (weights stacked on the leading ``n`` axis, one einsum per layer) and the
  readout.

Connectivity is offered two ways, equal up to float rounding: ``"gather"`` (index the pool, then
a per-neuron ``[s, d]`` weight matrix) and ``"dense"`` (scatter the synaptic weights once into a
``[pool, n, d]`` matrix, then a plain matmul). `choose_connectivity` picks per part by shape.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from elm_jax.network_scan import (
    LAYOUTS,
    from_scan_layout,
    network_weights,
    scan_with_custom_grad,
    scan_with_remat,
    to_scan_layout,
)
from elm_jax.neuron import decay, effective_tau_max, log_spaced_proto_tau, scaled_sigmoid

Array = jax.Array

# Measured on CPU by bench/network_speed.py (see docs/network.md): the dense masked matmul wins
# while its multiply count per neuron is within this factor of the neuron's own multiply count.
DENSE_MAX_RATIO = 16.0
# Empirical tanh scaling of the reference neuron (LeCun's 1.7159 * tanh(2x/3)).
_TANH_GAIN, _TANH_SLOPE = 1.7159, 2.0 / 3.0


@dataclasses.dataclass(frozen=True)
class Wiring:
    """Fixed synapse wiring of a network, as NumPy arrays.

    Attributes:
      source: ``[n, s]`` int32 index into the pool ``[e ; y]`` (``< external_dim`` is external).
      branch: ``[n, s]`` int32 branch of each synapse, ``0 <= branch < num_branches``.
      num_external: synapses per neuron that read the external input (the first ones).
      external_dim: width D_ext of the external part of the pool.
    """

    source: np.ndarray
    branch: np.ndarray
    num_external: int
    external_dim: int


def num_recurrent_synapses(synapses_per_neuron: int, recurrent_fraction: float) -> int:
    """Recurrent synapses per neuron: ``round(recurrent_fraction * k_c)`` (Python rounding)."""
    return int(round(recurrent_fraction * synapses_per_neuron))


def validate_wiring_args(
    num_neurons: int,
    synapses_per_neuron: int,
    num_branches: int,
    external_dim: int,
    recurrent_fraction: float,
) -> None:
    """Raises ValueError naming the field, the value and what is valid for impossible wirings."""
    if int(num_neurons) != num_neurons or num_neurons < 1:
        raise ValueError(f"num_neurons={num_neurons!r} is invalid: must be an integer >= 1")
    if int(num_branches) != num_branches or num_branches < 1:
        raise ValueError(f"num_branches={num_branches!r} is invalid: must be an integer >= 1")
    if int(external_dim) != external_dim or external_dim < 1:
        raise ValueError(f"external_dim={external_dim!r} is invalid: must be an integer >= 1")
    if (
        int(synapses_per_neuron) != synapses_per_neuron
        or synapses_per_neuron < num_branches
        or synapses_per_neuron % num_branches
    ):
        raise ValueError(
            f"synapses_per_neuron (k_c)={synapses_per_neuron!r} is invalid: must be a positive "
            f"multiple of num_branches (d_tree)={num_branches}"
        )
    pool = external_dim + num_neurons
    if synapses_per_neuron > pool:
        raise ValueError(
            f"synapses_per_neuron (k_c)={synapses_per_neuron} is larger than the presynaptic pool "
            f"D_ext + N = {external_dim} + {num_neurons} = {pool}: must be <= {pool}"
        )
    if not (isinstance(recurrent_fraction, (int, float)) and 0.0 <= recurrent_fraction <= 1.0):
        raise ValueError(
            f"recurrent_fraction={recurrent_fraction!r} is invalid: must be a number in [0, 1]"
        )


def _draw_sources(rng: np.random.Generator, pool_size: int, count: int) -> np.ndarray:
    """``count`` indices in ``[0, pool_size)``, without replacement while the pool allows it.

    Beyond the pool size, further whole permutations are appended, so every source is used
    either floor or ceil(count / pool_size) times.
    """
    if count == 0:
        return np.zeros((0,), np.int64)
    reps = -(-count // pool_size)
    return np.concatenate([rng.permutation(pool_size) for _ in range(reps)])[:count]


def make_wiring(
    num_neurons: int,
    synapses_per_neuron: int,
    num_branches: int,
    external_dim: int,
    recurrent_fraction: float,
    seed: int,
) -> Wiring:
    """Draws the network's wiring with ``numpy.random.default_rng(seed)`` (SPEC §3).

    Each neuron gets exactly ``k_c`` synapses, ``round(recurrent_fraction * k_c)`` of them
    recurrent, and exactly ``k_c / d_tree`` synapses per branch; which synapses of a branch are
    recurrent is random.
    """
    validate_wiring_args(
        num_neurons, synapses_per_neuron, num_branches, external_dim, recurrent_fraction
    )
    k_c = synapses_per_neuron
    k_rec = num_recurrent_synapses(k_c, recurrent_fraction)
    k_ext = k_c - k_rec
    per_branch = k_c // num_branches
    rng = np.random.default_rng(seed)
    source = np.empty((num_neurons, k_c), np.int32)
    branch = np.empty((num_neurons, k_c), np.int32)
    for n in range(num_neurons):
        # Balanced random branch assignment; each block is sorted by branch so that with no
        # recurrent synapses the layout is the single neuron's (branch = synapse // d_brch).
        branches = rng.permutation(np.repeat(np.arange(num_branches), per_branch))
        ext_branch, rec_branch = np.sort(branches[:k_ext]), np.sort(branches[k_ext:])
        ext_src = _draw_sources(rng, external_dim, k_ext)
        rec_src = external_dim + _draw_sources(rng, num_neurons, k_rec)
        source[n] = np.concatenate([ext_src, rec_src])
        branch[n] = np.concatenate([ext_branch, rec_branch])
    return Wiring(source, branch, k_ext, external_dim)


def choose_connectivity(
    pool_size: int, num_synapses: int, num_branches: int, neuron_macs: int
) -> str:
    """``"dense"`` or ``"gather"`` for one part of the pool, by shape.

    The dense product costs ``pool_size * d_tree`` multiply-adds per neuron and step, but runs as
    one large matmul; the gather costs ``num_synapses`` lookups, and its gradient is a scatter-add
    that XLA runs slowly on CPU. Dense wins while its cost stays within `DENSE_MAX_RATIO` times the
    neuron's own multiply-adds per step (``neuron_macs``: synapses + MLP + readout), i.e. while it
    does not dominate the step (rule fitted to bench/network_speed.py, see docs/network.md).
    """
    if num_synapses == 0:
        return "dense"
    return "dense" if pool_size * num_branches <= DENSE_MAX_RATIO * neuron_macs else "gather"


# ---------------------------------------------------------------------------- pure network math


def synapse_branch_weights(w_s: Array, branch: Array, num_branches: int) -> Array:
    """``[n, s] x [n, s] -> [n, s, d]``: each synapse's weight placed in its branch column."""
    return w_s[..., None] * jax.nn.one_hot(branch, num_branches, dtype=w_s.dtype)


def dense_synapse_matrix(
    w_s: Array, source: Array, branch: Array, pool_size: int, num_branches: int
) -> Array:
    """``[pool, n, d]`` matrix with ``sum`` of the weights of synapses ``source -> (n, branch)``.

    Scatter-add, so duplicate sources (pool smaller than k_c) accumulate exactly like the gather.
    """
    n = w_s.shape[0]
    neuron = jnp.broadcast_to(jnp.arange(n)[:, None], source.shape)
    zeros = jnp.zeros((pool_size, n, num_branches), w_s.dtype)
    return zeros.at[source, neuron, branch].add(w_s)


def external_branch_input(
    e: Array, w_s: Array, source: Array, branch: Array, num_branches: int, mode: str
) -> Array:
    """External branch input of every neuron for all steps: ``e [b, t, i] -> [t, n, b, d]``.

    Computed once before the scan, already in the scan's time-major, neuron-major layout.
    """
    if mode == "gather":
        # Gather whole rows of a channel-major copy (each row is all b*t values of one channel):
        # measured about 1.4x faster in the train step than gathering single elements of e.
        b, t, i = e.shape
        xs = jnp.moveaxis(e, -1, 0).reshape(i, b * t)[source]  # [n, s, b*t]
        wb = synapse_branch_weights(w_s, branch, num_branches)
        out = jnp.einsum("nsx,nsd->nxd", xs, wb).reshape(w_s.shape[0], b, t, num_branches)
        return jnp.transpose(out, (2, 0, 1, 3))
    if mode == "dense":
        w = dense_synapse_matrix(w_s, source, branch, e.shape[-1], num_branches)
        return jnp.einsum("bti,ind->tnbd", e, w)
    raise ValueError(f"connectivity={mode!r} is invalid: must be 'gather' or 'dense'")


def recurrent_branch_input(y: Array, rec: Mapping[str, Any], num_branches: int) -> Array:
    """Recurrent branch input ``y_{t-1} [j, b] -> [n, b, d]`` (inside the scan)."""
    if rec["mode"] == "gather":
        return jnp.einsum("nsb,nsd->nbd", y[rec["source"]], rec["weights"])
    return jnp.einsum("jb,jnd->nbd", y, rec["weights"])


def prepare_recurrent(w_s: Array, source: Array, branch: Array, num_neurons: int, d: int, mode):
    """The recurrent synapses' weights in the form the scan uses (computed outside it)."""
    if mode == "gather":
        weights = synapse_branch_weights(w_s, branch, d)  # [n, s, d]
    else:
        weights = dense_synapse_matrix(w_s, source, branch, num_neurons, d)  # [j, n, d]
    return {"mode": mode, "source": source, "weights": weights}


def _neuron_matmul(h: Array, kernel: Array) -> Array:
    """``[n, b, i] x [n, i, o] -> [n, b, o]``: one batched matmul with the unit axis leading."""
    return jax.lax.dot_general(h, kernel, (((2,), (1,)), ((0,), (0,))))


def network_step(derived: Mapping[str, Any], carry: Mapping[str, Array], ext_t: Array):
    """One step in the scan layout: ``carry, ext_t [n, b, d] -> (carry, y_t [n, b])``.

    Carry leaves are neuron-major here (``branch [n, b, d]``, ``memory [n, b, m]``,
    ``output [n, b]``): every per-neuron product is then a batched matmul with the unit axis
    leading, which XLA runs without transposes (about 3x faster on CPU than batch-major).
    ``derived`` holds what was computed outside the scan; no module calls in here.
    """
    b = derived["kappa_b"] * carry["branch"] + ext_t
    if derived["recurrent"] is not None:
        b = b + recurrent_branch_input(carry["output"], derived["recurrent"], b.shape[-1])
    m_prev = carry["memory"]
    kappa_m = derived["kappa_m"]
    h = jnp.concatenate([b, kappa_m * m_prev], axis=-1)
    layers = derived["mlp"]
    for li, (kernel, bias) in enumerate(layers):
        h = _neuron_matmul(h, kernel) + bias[:, None]
        if li < len(layers) - 1:
            h = jax.nn.relu(h)
    dm = _TANH_GAIN * jnp.tanh(_TANH_SLOPE * h)
    m = kappa_m * m_prev + derived["one_minus_kappa_lambda"] * dm
    y = jnp.einsum("nbm,nm->nb", m, derived["w_y"]) + derived["b_y"][:, None]
    return {"branch": b, "memory": m, "output": y}, y


def zero_carry(batch_size: int, num_neurons: int, num_memory: int, num_branches: int):
    """The zero state: branch traces ``[b, n, d]``, memories ``[b, n, m]`` and previous outputs
    ``[b, n]``, all float32."""
    return {
        "branch": jnp.zeros((batch_size, num_neurons, num_branches), jnp.float32),
        "memory": jnp.zeros((batch_size, num_neurons, num_memory), jnp.float32),
        "output": jnp.zeros((batch_size, num_neurons), jnp.float32),
    }


def network_scan(
    derived: Mapping[str, Any],
    carry: Mapping[str, Array],
    ext: Array,
    custom_grad: bool = True,
):
    """Runs `network_step` over time: ``ext [t, n, b, d] -> (carry, y [b, t, n])``.

    ``carry`` is batch-major (`zero_carry`) on both sides; float32 whatever the inputs.
    ``custom_grad`` (default) runs `elm_jax.network_scan.scan_with_custom_grad` (same values,
    weight gradients computed after the reverse scan) in the layout ``derived["layout"]``
    (default ``"neuron_major"``); False is plain autodiff of `network_step`, neuron-major (the
    reference the tests compare against).
    """
    layout = derived.get("layout", "neuron_major") if custom_grad else "neuron_major"
    chunk = derived.get("remat_chunk", 0)
    state, ext = to_scan_layout(carry, ext, layout)
    if custom_grad and chunk:
        # Whole chunks, then the remaining T mod chunk steps as one shorter chunk.
        weights, src, mode = network_weights(derived, layout)
        whole = ext.shape[0] - ext.shape[0] % chunk
        parts = []
        for piece, size in ((ext[:whole], chunk), (ext[whole:], ext.shape[0] - whole)):
            if piece.shape[0]:
                state, ys = scan_with_remat(weights, piece, state, src, mode, layout, size)
                parts.append(ys)
        ys = jnp.concatenate(parts, axis=0)
    elif custom_grad:
        weights, src, mode = network_weights(derived, layout)
        state, ys = scan_with_custom_grad(weights, ext, state, src, mode, layout)
    else:
        step = lambda c, x: network_step(derived, c, x)  # noqa: E731
        state, ys = jax.lax.scan(step, state, ext)
    return from_scan_layout(state, ys, layout)


# ---------------------------------------------------------------------------------- Flax layer


def _torch_linear_init(fan_in: int):
    """Kaiming-uniform bound 1/sqrt(fan_in), like torch.nn.Linear (weights and biases)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class StackedAffine(nn.Module):
    """Weights of ``num_units`` independent affine maps stacked on a leading unit axis.

    Returns ``(kernel [n, fan_in, fan_out], bias [n, fan_out])``, or with ``fan_out=None`` a
    scalar output per unit: ``(kernel [n, fan_in], bias [n])``. Applied by the caller (inside
    the scan), so the module itself is only the parameter holder.
    """

    num_units: int
    fan_in: int
    fan_out: int | None

    @nn.compact
    def __call__(self) -> tuple[Array, Array]:
        init = _torch_linear_init(self.fan_in)
        out = () if self.fan_out is None else (self.fan_out,)
        kernel = self.param("kernel", init, (self.num_units, self.fan_in, *out))
        bias = self.param("bias", init, (self.num_units, *out))
        return kernel, bias


class StackedMLP(nn.Module):
    """``len(sizes) - 1`` stacked affine layers named ``dense_0 ..`` (weights only)."""

    num_units: int
    sizes: tuple[int, ...]

    @nn.compact
    def __call__(self) -> list[tuple[Array, Array]]:
        return [
            StackedAffine(self.num_units, a, b, name=f"dense_{i}")()
            for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        ]


class ELMNetwork(nn.Module):
    """A recurrent layer of N ELM neurons (v2) with fixed random wiring (SPEC §3).

    Called as ``y, carry = layer(e, carry)`` with ``e [b, t, external_dim]`` and returns every
    neuron's scalar output ``y [b, t, n]`` and the state after the last step.

    Variables (``n`` leading on every per-neuron leaf):
      params:    proto_w_s [n, s]; proto_tau_m [n, m] (learn_memory_tau);
                 mlp/dense_l/kernel [n, in, out], mlp/dense_l/bias [n, out];
                 w_y/kernel [n, m], w_y/bias [n]
      constants: synapse_source [n, s] int32, synapse_branch [n, s] int32, tau_b [n, d];
                 proto_tau_m [n, m] (when not learned)

    ``layout``: the scan's layout (``"auto"`` = ``"neuron_major"``, or ``"neuron_minor"``; same
    values and gradients). ``remat_chunk`` (default 10; 0 = off): keep only every
    ``remat_chunk``-th state for the gradient and recompute the steps in between (a last chunk
    takes T mod remat_chunk). Besides the memory, 10 measured 1.6-1.9x faster train steps on CPU
    than 0 for few complex and balanced networks (docs/network.md).
    """

    num_neurons: int
    num_memory: int
    synapses_per_neuron: int
    external_dim: int
    num_branches: int = 4
    mlp_num_layers: int = 1
    mlp_hidden_size: int | None = None
    recurrent_fraction: float = 0.5
    wiring_seed: int = 0
    connectivity: str = "auto"
    layout: str = "auto"
    remat_chunk: int = 10
    lambda_value: float = 5.0
    tau_b_value: float = 5.0
    memory_tau_min: float = 1.0
    memory_tau_max: float = 1000.0
    # tau_m initialised log-spaced over this range (inside the bounds); None: over the bounds.
    memory_tau_init: tuple[float, float] | None = None
    learn_memory_tau: bool = True
    w_s_value: float = 0.5
    delta_t: float = 1.0

    @property
    def hidden_size(self) -> int:
        return self.mlp_hidden_size or 2 * self.num_memory

    @property
    def tau_max(self) -> float:
        """The upper tau_m bound used (v2 widening, as in the reference neuron)."""
        return effective_tau_max(self.memory_tau_min, self.memory_tau_max)

    def connectivity_modes(self) -> tuple[str, str]:
        """The connectivity used for the (external, recurrent) parts of the pool."""
        if self.connectivity not in ("auto", "gather", "dense"):
            raise ValueError(
                f"connectivity={self.connectivity!r} is invalid: must be 'auto', 'gather' or 'dense'"
            )
        k_rec = num_recurrent_synapses(self.synapses_per_neuron, self.recurrent_fraction)
        k_ext = self.synapses_per_neuron - k_rec
        if self.connectivity != "auto":
            return self.connectivity, self.connectivity
        m, h, d, layers = self.num_memory, self.hidden_size, self.num_branches, self.mlp_num_layers
        macs = self.synapses_per_neuron + (d + m) * h + (layers - 1) * h * h + h * m + m
        ext = choose_connectivity(self.external_dim, k_ext, d, macs)
        rec = choose_connectivity(self.num_neurons, k_rec, d, macs)
        return ext, rec

    def scan_layout(self) -> str:
        """The scan's layout (`elm_jax.network_scan.LAYOUTS`). "auto" is neuron-major: on CPU
        neuron-minor measured no faster at any benchmark point (docs/network.md)."""
        if self.layout not in ("auto", *LAYOUTS):
            raise ValueError(
                f"layout={self.layout!r} is invalid: must be 'auto' or one of {LAYOUTS}"
            )
        return "neuron_major" if self.layout == "auto" else self.layout

    def _variables(self):
        n, m, d, s = self.num_neurons, self.num_memory, self.num_branches, self.synapses_per_neuron
        wiring = make_wiring(n, s, d, self.external_dim, self.recurrent_fraction, self.wiring_seed)
        source = self.variable("constants", "synapse_source", lambda: jnp.asarray(wiring.source))
        branch = self.variable("constants", "synapse_branch", lambda: jnp.asarray(wiring.branch))
        tau_b = self.variable(
            "constants", "tau_b", lambda: jnp.full((n, d), self.tau_b_value, jnp.float32)
        )
        proto_tau = log_spaced_proto_tau(m, self.memory_tau_min, self.tau_max, self.memory_tau_init)
        tau_init = lambda *_: jnp.tile(jnp.asarray(proto_tau, jnp.float32), (n, 1))  # noqa: E731
        if self.learn_memory_tau:
            proto_tau_m = self.param("proto_tau_m", tau_init, (n, m))
        else:
            proto_tau_m = self.variable("constants", "proto_tau_m", tau_init).value
        proto_w_s = self.param(
            "proto_w_s", nn.initializers.constant(self.w_s_value), (n, s), jnp.float32
        )
        sizes = (d + m,) + (self.hidden_size,) * self.mlp_num_layers + (m,)
        mlp = StackedMLP(n, sizes, name="mlp")()
        w_y, b_y = StackedAffine(n, m, None, name="w_y")()
        return source.value, branch.value, tau_b.value, proto_tau_m, proto_w_s, mlp, w_y, b_y

    @nn.compact
    def __call__(self, e: Array, carry: Mapping[str, Array] | None = None):
        """``e [b, t, external_dim] -> (y [b, t, n], carry)``."""
        if e.ndim != 3 or e.shape[-1] != self.external_dim:
            raise ValueError(
                f"input shape {e.shape} is invalid: expected [batch, time, {self.external_dim}]"
            )
        source, branch, tau_b, proto_tau_m, proto_w_s, mlp, w_y, b_y = self._variables()
        ext_mode, rec_mode = self.connectivity_modes()
        d, dt = self.num_branches, self.delta_t
        tau_m = scaled_sigmoid(proto_tau_m, self.memory_tau_min, self.tau_max)
        w_s = jax.nn.relu(proto_w_s)
        k_ext = self.synapses_per_neuron - num_recurrent_synapses(
            self.synapses_per_neuron, self.recurrent_fraction
        )
        n = self.num_neurons
        if k_ext:
            ext = external_branch_input(
                e.astype(jnp.float32), w_s[:, :k_ext], source[:, :k_ext], branch[:, :k_ext], d,
                ext_mode,
            )  # fmt: skip
        else:
            ext = jnp.zeros((e.shape[1], n, e.shape[0], d), jnp.float32)
        recurrent = None
        if k_ext < self.synapses_per_neuron:
            recurrent = prepare_recurrent(
                w_s[:, k_ext:], source[:, k_ext:] - self.external_dim, branch[:, k_ext:], n, d,
                rec_mode,
            )  # fmt: skip
        derived = {
            "recurrent": recurrent,
            "layout": self.scan_layout(),
            "remat_chunk": self.remat_chunk,
            "kappa_b": decay(tau_b, dt)[:, None],  # [n, 1, d]: broadcasts over batch
            "kappa_m": decay(tau_m, dt)[:, None],
            "one_minus_kappa_lambda": (1.0 - decay(tau_m, dt, self.lambda_value))[:, None],
            "mlp": mlp,
            "w_y": w_y,
            "b_y": b_y,
        }
        if carry is None:
            carry = zero_carry(e.shape[0], self.num_neurons, self.num_memory, d)
        return_carry, y = network_scan(derived, carry, ext)
        return y, return_carry
