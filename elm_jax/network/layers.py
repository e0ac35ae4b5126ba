"""Flax modules of the ELM network (docs/science.md §3): stacked per-neuron weights and `ELMNetwork`.

The modules only hold and initialise variables and compute what is parallel in time; the
recurrence is the pure math of `elm_jax.network.dynamics`. Axis legend as there.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from elm_jax.network.config import NetworkConfig
from elm_jax.network.dynamics import (
    external_branch_input,
    prepare_recurrent,
    run_network,
    zero_carry,
)
from elm_jax.network.fused import default_platform, resolve_kernel, run_fused
from elm_jax.network.pallas_gpu import run_pallas
from elm_jax.network.scan import NetworkWeights
from elm_jax.network.wiring import make_wiring
from elm_jax.ops import decay, log_spaced_proto_tau, scaled_sigmoid, torch_linear_uniform

Array = jax.Array


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
        init = torch_linear_uniform(self.fan_in)
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
    """A recurrent layer of N ELM neurons (v2) with fixed random wiring (docs/science.md §3).

    ``config``: the layer's `NetworkConfig` (validated; its docstring explains every setting).
    Called as ``y, carry = layer(e, carry)`` with ``e [b, t, external_dim]`` and returns every
    neuron's scalar output ``y [b, t, n]`` and the state after the last step.

    Variables (``n`` leading on every per-neuron leaf):
      params:    proto_w_s [n, s]; proto_tau_m [n, m] (learn_memory_tau);
                 mlp/dense_l/kernel [n, in, out], mlp/dense_l/bias [n, out];
                 w_y/kernel [n, m], w_y/bias [n]
      constants: synapse_source [n, s] int32, synapse_branch [n, s] int32, tau_b [n, d];
                 proto_tau_m [n, m] (when not learned)

    ``pallas_interpret`` (not a setting of the network): run ``kernel="gpu_pallas"`` in
    Pallas's interpreter, on any platform (slow; for checking it without a GPU).
    """

    config: NetworkConfig
    pallas_interpret: bool = False

    def _variables(self):
        cfg = self.config
        n, m, d, s = cfg.num_neurons, cfg.num_memory, cfg.num_branches, cfg.synapses_per_neuron
        wiring = make_wiring(
            num_neurons=n,
            synapses_per_neuron=s,
            num_branches=d,
            external_dim=cfg.external_dim,
            recurrent_fraction=cfg.recurrent_fraction,
            seed=cfg.wiring_seed,
        )
        source = self.variable("constants", "synapse_source", lambda: jnp.asarray(wiring.source))
        branch = self.variable("constants", "synapse_branch", lambda: jnp.asarray(wiring.branch))
        tau_b = self.variable(
            "constants", "tau_b", lambda: jnp.full((n, d), cfg.tau_b_value, jnp.float32)
        )
        proto_tau = log_spaced_proto_tau(m, cfg.memory_tau_min, cfg.tau_max, cfg.memory_tau_init)
        tau_init = lambda *_: jnp.tile(jnp.asarray(proto_tau, jnp.float32), (n, 1))  # noqa: E731
        if cfg.learn_memory_tau:
            proto_tau_m = self.param("proto_tau_m", tau_init, (n, m))
        else:
            proto_tau_m = self.variable("constants", "proto_tau_m", tau_init).value
        proto_w_s = self.param(
            "proto_w_s", nn.initializers.constant(cfg.w_s_value), (n, s), jnp.float32
        )
        sizes = (d + m,) + (cfg.hidden_size,) * cfg.mlp_num_layers + (m,)
        mlp = StackedMLP(n, sizes, name="mlp")()
        w_y, b_y = StackedAffine(n, m, None, name="w_y")()
        return source.value, branch.value, tau_b.value, proto_tau_m, proto_w_s, mlp, w_y, b_y

    def _run_xla(self, weights, carry, e, w_s, source, branch):
        """The recurrence on XLA's scan: the external input for all steps first, then
        `run_network` (``weights.rec`` filled in here from the recurrent synapses)."""
        cfg = self.config
        ext_mode, rec_mode = cfg.connectivity_modes
        d, n, k_ext = cfg.num_branches, cfg.num_neurons, cfg.num_external_synapses
        if k_ext:
            ext = external_branch_input(
                e, w_s[:, :k_ext], source[:, :k_ext], branch[:, :k_ext], d, ext_mode
            )
        else:
            ext = jnp.zeros((e.shape[1], n, e.shape[0], d), jnp.float32)
        rec, src, mode = None, None, "none"
        if k_ext < cfg.synapses_per_neuron:
            rec, src = prepare_recurrent(
                w_s[:, k_ext:], source[:, k_ext:] - cfg.external_dim, branch[:, k_ext:], n, d,
                rec_mode,
            )  # fmt: skip
            mode = rec_mode
        return run_network(
            weights._replace(rec=rec),
            carry,
            ext,
            src=src,
            mode=mode,
            layout=cfg.scan_layout,
            remat_chunk=cfg.remat_chunk,
        )

    @nn.compact
    def __call__(
        self,
        e: Array,
        carry: Mapping[str, Array] | None = None,
        readout: tuple[Array, Array] | None = None,
    ):
        """``e [b, t, external_dim] -> (y [b, t, n], carry)``; with ``readout`` = (W [n, o],
        b [o]), ``(y W + b [b, t, o], carry)``: a per-step linear decoder, which the fused CPU
        kernel reads from its own layout (`elm_jax.network.fused.decode`)."""
        cfg = self.config
        if e.ndim != 3 or e.shape[-1] != cfg.external_dim:
            raise ValueError(
                f"input shape {e.shape} is invalid: expected [batch, time, {cfg.external_dim}]"
            )
        source, branch, tau_b, proto_tau_m, proto_w_s, mlp, w_y, b_y = self._variables()
        d, dt, n = cfg.num_branches, cfg.delta_t, cfg.num_neurons
        tau_m = scaled_sigmoid(proto_tau_m, cfg.memory_tau_min, cfg.tau_max)
        w_s = jax.nn.relu(proto_w_s)
        (k0, b0), *rest = mlp
        weights = NetworkWeights(
            kappa_b=decay(tau_b, dt)[:, None],  # [n, 1, d]: broadcasts over batch
            kappa_m=decay(tau_m, dt)[:, None],
            memory_gain=(1.0 - decay(tau_m, dt, cfg.lambda_value))[:, None],
            k_branch=k0[:, :d],
            k_memory=k0[:, d:],
            bias0=b0[:, None],
            layers=tuple((kernel, bias[:, None]) for kernel, bias in rest),
            w_y=w_y[:, None],
            b_y=b_y[:, None],
            rec=None,
        )
        if carry is None:
            carry = zero_carry(
                batch_size=e.shape[0], num_neurons=n, num_memory=cfg.num_memory, num_branches=d
            )
        e = e.astype(jnp.float32)

        def decoded(out):
            new_carry, y = out
            return new_carry, (y if readout is None else y @ readout[0] + readout[1])

        def on_xla(weights, carry, e, w_s):
            return decoded(self._run_xla(weights, carry, e, w_s, source, branch))

        def on_cpu_kernel(weights, carry, e, w_s):
            return run_fused(
                weights, carry, e, w_s, source, branch, remat_chunk=cfg.remat_chunk,
                readout=readout,
            )  # fmt: skip

        def on_gpu_kernel(weights, carry, e, w_s):
            return decoded(
                run_pallas(
                    weights, carry, e, w_s, source, branch, remat_chunk=cfg.remat_chunk,
                    interpret=self.pallas_interpret,
                )
            )  # fmt: skip

        implementations = {"xla": on_xla, "cpu_fused": on_cpu_kernel, "gpu_pallas": on_gpu_kernel}
        num_maps, macs = 1 + len(rest), cfg.neuron_macs
        if cfg.kernel != "auto":
            run = implementations[resolve_kernel(cfg.kernel, num_maps, neuron_macs=macs)]
            return_carry, y = run(weights, carry, e, w_s)
            return y, return_carry
        # One program: each platform's kernel where it covers the configuration, XLA's scan
        # elsewhere. The CPU branch only where the process runs on a CPU (nothing is built on
        # an accelerator).
        platforms = ("cpu", "cuda") if default_platform() == "cpu" else ("cuda",)
        branches = {}
        for platform in platforms:
            choice = resolve_kernel("auto", num_maps, neuron_macs=macs, platform=platform)
            if choice != "xla":
                branches[platform] = implementations[choice]
        if branches:
            return_carry, y = jax.lax.platform_dependent(
                weights, carry, e, w_s, **branches, default=on_xla
            )
        else:
            return_carry, y = on_xla(weights, carry, e, w_s)
        return y, return_carry
