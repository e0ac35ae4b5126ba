"""Configuration of the ELM network (docs/science.md §3): validation and what follows from it.

`NetworkConfig` holds every setting of `elm_jax.network.layers.ELMNetwork`, checked once at
construction; the module takes it whole. Its field names are `elm_jax.models.ModelConfig`'s,
which builds it for ``arch="elm"`` (``external_dim`` from the task). Axis legend as in
`elm_jax.network.dynamics`.
"""

from __future__ import annotations

import dataclasses

from elm_jax.network.fused import KERNELS
from elm_jax.network.scan import LAYOUTS
from elm_jax.network.wiring import (
    choose_connectivity,
    num_recurrent_synapses,
    validate_wiring_args,
)
from elm_jax.ops import (
    check_integer,
    check_memory_tau_bounds,
    check_memory_tau_init,
    check_number,
    effective_tau_max,
    elm_macs_per_neuron,
)

CONNECTIVITIES = ("auto", "gather", "dense")
NETWORK_LAYOUTS = ("auto", *LAYOUTS)
_INT_FIELDS = (
    "num_neurons",
    "num_memory",
    "synapses_per_neuron",
    "external_dim",
    "num_branches",
    "mlp_num_layers",
    "wiring_seed",
)
_POSITIVE_FLOATS = ("lambda_value", "memory_tau_max", "delta_t")
# Zero is legal where the reference clamps every timescale at 1e-6 (docs/science.md §4).
_NONNEGATIVE_FLOATS = ("tau_b_value", "memory_tau_min")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Validated configuration of a recurrent layer of N ELM neurons (v2, fixed random wiring).

    ``external_dim`` (D_ext) is the width of the encoded input; the pool a synapse reads is
    D_ext + N. ``connectivity``: how synapses read the pool ("gather", "dense" or "auto": by
    the cost model). ``layout``: the scan's layout ("auto" = "neuron_major", or
    "neuron_minor"; same values and gradients). ``remat_chunk`` (0 = off): keep only every
    ``remat_chunk``-th state for the gradient and recompute the steps in between (a last chunk
    takes T mod remat_chunk); besides the memory, 10 measured 1.6-1.9x faster train steps on
    CPU than 0 for few complex and balanced networks (docs/performance-log.md). ``kernel``: the
    recurrence's implementation (`elm_jax.network.fused.KERNELS`): "auto" runs the fused CPU
    kernel on a CPU when it is built and covers the configuration, the Pallas kernel on an
    NVIDIA GPU when it covers the configuration, the XLA scan otherwise; "xla", "cpu_fused"
    and "gpu_pallas" force one (same values and gradients up to float rounding). tau_m is
    initialised log-spaced over [memory_tau_init_min, memory_tau_init_max] (inside the
    bounds; both None: over the bounds).
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
    kernel: str = "auto"
    lambda_value: float = 5.0
    tau_b_value: float = 5.0
    memory_tau_min: float = 1.0
    memory_tau_max: float = 1000.0
    memory_tau_init_min: float | None = None
    memory_tau_init_max: float | None = None
    learn_memory_tau: bool = True
    w_s_value: float = 0.5
    delta_t: float = 1.0

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            check_integer(name, getattr(self, name), 0 if name == "wiring_seed" else 1)
        if self.mlp_hidden_size is not None and (
            not isinstance(self.mlp_hidden_size, int) or self.mlp_hidden_size < 1
        ):
            raise ValueError(
                f"mlp_hidden_size={self.mlp_hidden_size!r} is invalid: must be None or an int >= 1"
            )
        for name in _POSITIVE_FLOATS:
            check_number(name, getattr(self, name), positive=True)
        for name in _NONNEGATIVE_FLOATS:
            check_number(name, getattr(self, name), positive=False)
        check_memory_tau_bounds(self.memory_tau_min, self.memory_tau_max)
        check_memory_tau_init(
            self.memory_tau_init_min, self.memory_tau_init_max, self.memory_tau_min,
            self.memory_tau_max,
        )  # fmt: skip
        choices = (
            ("connectivity", CONNECTIVITIES),
            ("layout", NETWORK_LAYOUTS),
            ("kernel", KERNELS),
        )
        for name, valid in choices:
            if getattr(self, name) not in valid:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is invalid: must be one of {valid}"
                )
        if isinstance(self.remat_chunk, bool) or not isinstance(self.remat_chunk, int):
            raise ValueError(f"remat_chunk={self.remat_chunk!r} is invalid: must be an integer")
        if self.remat_chunk < 0:
            raise ValueError(
                f"remat_chunk={self.remat_chunk!r} is invalid: must be 0 (off) or >= 1 steps"
            )
        validate_wiring_args(
            num_neurons=self.num_neurons,
            synapses_per_neuron=self.synapses_per_neuron,
            num_branches=self.num_branches,
            external_dim=self.external_dim,
            recurrent_fraction=self.recurrent_fraction,
        )

    @property
    def hidden_size(self) -> int:
        """h: the MLP width (``mlp_hidden_size`` or 2 d_m)."""
        return self.mlp_hidden_size or 2 * self.num_memory

    @property
    def tau_max(self) -> float:
        """The upper tau_m bound used (v2 widening, as in the reference neuron)."""
        return effective_tau_max(self.memory_tau_min, self.memory_tau_max)

    @property
    def memory_tau_init(self) -> tuple[float, float] | None:
        """(init_min, init_max) of the tau_m initialisation, or None (over the bounds)."""
        if self.memory_tau_init_min is None:
            return None
        return (float(self.memory_tau_init_min), float(self.memory_tau_init_max))

    @property
    def num_external_synapses(self) -> int:
        """Synapses per neuron that read the external input (the first ones of each neuron)."""
        return self.synapses_per_neuron - num_recurrent_synapses(
            self.synapses_per_neuron, self.recurrent_fraction
        )

    @property
    def neuron_macs(self) -> int:
        """Multiply-adds of one neuron's step without its synapses (`elm_macs_per_neuron`)."""
        return elm_macs_per_neuron(
            num_memory=self.num_memory, synapses_per_neuron=0, hidden_size=self.hidden_size,
            num_branches=self.num_branches, mlp_num_layers=self.mlp_num_layers,
        )  # fmt: skip

    @property
    def scan_layout(self) -> str:
        """The scan's layout (`elm_jax.network.scan.LAYOUTS`). "auto" is neuron-major: on CPU
        neuron-minor measured no faster at any benchmark point (docs/performance-log.md)."""
        return "neuron_major" if self.layout == "auto" else self.layout

    @property
    def connectivity_modes(self) -> tuple[str, str]:
        """The connectivity used for the (external, recurrent) parts of the pool."""
        if self.connectivity != "auto":
            return self.connectivity, self.connectivity
        k_ext = self.num_external_synapses
        k_rec = self.synapses_per_neuron - k_ext
        d = self.num_branches
        macs = elm_macs_per_neuron(
            num_memory=self.num_memory,
            synapses_per_neuron=self.synapses_per_neuron,
            hidden_size=self.hidden_size,
            num_branches=d,
            mlp_num_layers=self.mlp_num_layers,
        )
        ext = choose_connectivity(
            pool_size=self.external_dim, num_synapses=k_ext, num_branches=d, neuron_macs=macs
        )
        rec = choose_connectivity(
            pool_size=self.num_neurons, num_synapses=k_rec, num_branches=d, neuron_macs=macs
        )
        return ext, rec
