"""The pure, jitted training steps of one architecture point over S seeds (vmapped, sharded).

Axis letters: r seed replica, b batch, t time, o class. Every leaf of the train state carries the
seed axis r first (state sharded over the mesh's `replica` axis, replicated over `data`):

    step [r]            updates done (equal for all seeds)
    params, extra       trainable variables / the model's other collections (e.g. wiring)
    opt_state           optax state, with the per-seed peak learning rate injected
    best_params         parameters at the best validation loss so far (best_step [r], best_val [r])
    diverged_step [r]   index of the first update whose loss or gradient was non-finite (-1: none);
                        a diverged seed's parameters stay at their last finite values
    metrics             on-device sums since the last log (see elm_jax.metrics)
    carry               LM with `carry_state`: the recurrent state carried across batches ({})

The update from step s to s+1 uses `dataset.train_batch(s, batch_size, seed)`, so data order and
everything else derive from the step number and a resumed run is bitwise the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from elm_jax import metrics as metrics_lib
from elm_jax import parallel
from elm_jax.models import build_model, initial_carry
from elm_jax.network.wiring import make_wiring
from elm_jax.optim import OptimConfig, make_optimizer, set_learning_rate


@struct.dataclass
class TrainState:
    """The train state of S seeds; every leaf has the seed axis r first (module docstring)."""

    step: jax.Array  # [r] int32
    params: Any
    extra: Any  # the model's other variable collections (e.g. constants/core: the wiring)
    opt_state: Any
    best_params: Any
    best_val: jax.Array  # [r]
    best_metric: jax.Array  # [r]
    best_step: jax.Array  # [r] int32, -1 before the first finite validation
    diverged_step: jax.Array  # [r] int32, -1 while finite
    metrics: dict[str, jax.Array]  # on-device sums since the last log
    carry: Any  # LM with spec.carry_state: the recurrent state; else {}


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Everything static about a step (hashable: the jit cache key besides shapes)."""

    model: Any  # elm_jax.models.ModelConfig
    optim: OptimConfig
    carry_state: bool = False  # LM: carry the recurrent state from one batch to the next

    @classmethod
    def create(cls, model: Any, optim: OptimConfig, carry_state: bool = False) -> StepSpec:
        """The spec with the peak learning rate factored out: it lives in the optimizer state
        (`init_state`), so runs that differ only in learning rate share one compiled step."""
        optim = dataclasses.replace(optim, learning_rate=1.0)
        return cls(model=model, optim=optim, carry_state=carry_state)


@functools.lru_cache(maxsize=64)
def _build_model(model_cfg: Any) -> Any:
    return build_model(model_cfg)


def _where_tree(pred: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def _train_one_seed(
    state: TrainState, batch: Mapping[str, jax.Array], spec: StepSpec
) -> TrainState:
    model = _build_model(spec.model)
    tx = make_optimizer(spec.optim)

    carry_in = state.carry if spec.carry_state else None

    def loss_fn(params):
        variables = {"params": params, **state.extra}
        logits, carry = model.apply(variables, batch["inputs"], carry=carry_in)
        loss, sums = spec.model.task_kind.loss_sums(logits, batch["labels"])
        return loss, (sums, carry)

    (loss, (sums, carry)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    # A non-finite loss or gradient freezes this seed at its last finite parameters.
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    active = state.diverged_step < 0
    keep = active & finite
    new_carry = state.carry
    if spec.carry_state:  # truncated BPTT: the state flows on, the gradient does not
        new_carry = _where_tree(keep, jax.lax.stop_gradient(carry), state.carry)
    metrics = {k: v + jnp.where(keep, sums[k], 0.0) for k, v in state.metrics.items()}
    return state.replace(
        params=_where_tree(keep, params, state.params),
        opt_state=_where_tree(keep, opt_state, state.opt_state),
        carry=new_carry,
        diverged_step=jnp.where(active & ~finite, state.step, state.diverged_step),
        metrics=metrics,
        step=state.step + 1,
    )


@functools.partial(jax.jit, static_argnames=("spec",), donate_argnames=("state",))
def train_step(state: TrainState, batch: Mapping[str, jax.Array], *, spec: StepSpec) -> TrainState:
    """One optimizer update of every seed: state leaves [r, ...], batch leaves [r, b, ...]."""
    return jax.vmap(functools.partial(_train_one_seed, spec=spec))(state, batch)


@functools.partial(jax.jit, static_argnames=("spec",))
def eval_step(
    params: Any, extra: Any, batch: Mapping[str, jax.Array], *, spec: StepSpec
) -> dict[str, jax.Array]:
    """Loss/metric sums [r] of every seed on one (shared) batch [b, ...] with "mask" [b]."""
    model = _build_model(spec.model)

    def one(p, e):
        logits, _ = model.apply({"params": p, **e}, batch["inputs"])
        return spec.model.task_kind.loss_sums(logits, batch["labels"], batch["mask"])[1]

    return jax.vmap(one)(params, extra)


@functools.partial(jax.jit, static_argnames=("spec",), donate_argnames=("carry",))
def eval_stream_step(
    params: Any, extra: Any, carry: Any, batch: Mapping[str, jax.Array], *, spec: StepSpec
) -> tuple[Any, dict[str, jax.Array]]:
    """One contiguous chunk [b, t] of a stream for every seed (a task kind that `streams`),
    carrying the state [r, b, ...] across chunks."""
    model = _build_model(spec.model)

    def one(p, e, c):
        logits, c = model.apply({"params": p, **e}, batch["inputs"], carry=c)
        return c, spec.model.task_kind.loss_sums(logits, batch["labels"], batch["mask"])[1]

    return jax.vmap(one)(params, extra, carry)


@functools.partial(jax.jit, donate_argnames=("state",))
def update_best(state: TrainState, val_loss: jax.Array, val_metric: jax.Array) -> TrainState:
    """Keeps, per seed, the parameters with the lowest finite validation loss [r] so far."""
    better = jnp.isfinite(val_loss) & (val_loss < state.best_val)
    return state.replace(
        best_params=jax.vmap(_where_tree)(better, state.params, state.best_params),
        best_val=jnp.where(better, val_loss, state.best_val),
        best_metric=jnp.where(better, val_metric, state.best_metric),
        best_step=jnp.where(better, state.step, state.best_step),
    )


def init_state(
    spec: StepSpec,
    seeds: list[int],
    learning_rates: list[float],
    mesh: jax.sharding.Mesh,
    batch_size: int | None = None,
    wiring_seeds: list[int] | None = None,
) -> TrainState:
    """The initial train state of all seeds, sharded over the mesh's `replica` axis.

    `batch_size` sizes the carried recurrent state when `spec.carry_state`. `wiring_seeds` (ELM
    network only; one per seed) draws each replica's synaptic wiring from its own seed, so the
    variance across seeds includes the wiring's (docs/science.md §8); None:
    `spec.model.wiring_seed` for all.
    """
    model = _build_model(spec.model)
    tx = make_optimizer(spec.optim)
    dummy = jnp.zeros(*spec.model.task_kind.input_spec(spec.model.input_dim))

    def one(seed, lr):
        # Initialisation uses stream 0 of the seed's key; nothing else in training is random.
        variables = model.init(jax.random.fold_in(jax.random.PRNGKey(seed), 0), dummy)
        variables = dict(variables)
        params = variables.pop("params")
        opt_state = set_learning_rate(tx.init(params), lr)
        carry = {}
        if spec.carry_state:
            if batch_size is None:
                raise ValueError("init_state needs batch_size when spec.carry_state is set")
            carry = initial_carry(spec.model, batch_size)
        return TrainState(
            carry=carry,
            step=jnp.zeros((), jnp.int32),
            params=params,
            extra=variables,
            opt_state=opt_state,
            best_params=params,
            best_val=jnp.asarray(jnp.inf, jnp.float32),
            best_metric=jnp.asarray(jnp.nan, jnp.float32),
            best_step=jnp.asarray(-1, jnp.int32),
            diverged_step=jnp.asarray(-1, jnp.int32),
            metrics={k: v[0] for k, v in metrics_lib.zeros(1).items()},
        )

    init = jax.jit(jax.vmap(one), out_shardings=parallel.state_sharding(mesh))
    state = init(jnp.asarray(seeds, jnp.uint32), jnp.asarray(learning_rates, jnp.float32))
    if wiring_seeds is not None and spec.model.arch == "elm":
        state = _rewire(state, spec.model, wiring_seeds)
    return state


def _rewire(state: TrainState, model: Any, wiring_seeds: list[int]) -> TrainState:
    """Replaces each replica's wiring constants by the draw of its own wiring seed."""
    wirings = [
        make_wiring(
            num_neurons=model.num_neurons,
            synapses_per_neuron=model.synapses_per_neuron,
            num_branches=model.num_branches,
            external_dim=model.external_dim,
            recurrent_fraction=model.recurrent_fraction,
            seed=int(seed),
        )
        for seed in wiring_seeds
    ]
    core = dict(state.extra["constants"]["core"])
    for name, field in (("synapse_source", "source"), ("synapse_branch", "branch")):
        stacked = np.stack([getattr(w, field) for w in wirings])
        core[name] = parallel.put_global(stacked, core[name].sharding)
    constants = {**state.extra["constants"], "core": core}
    return state.replace(extra={**state.extra, "constants": constants})


def evaluate(
    state: TrainState,
    params_key: str,
    dataset: Any,
    split: str,
    spec: StepSpec,
    mesh: jax.sharding.Mesh,
    batch_size: int,
    chunk_len: int,
    max_batches: int | None,
) -> dict[str, list[float | None]]:
    """Per-seed loss and metric of `state.<params_key>` ("params" or "best_params") on `split`
    (a task kind that `streams`: contiguous chunks, carried state)."""
    params, extra = getattr(state, params_key), state.extra
    num_seeds = int(state.step.shape[0])
    eval_sharding = parallel.eval_batch_sharding(mesh)
    total = None
    if spec.model.task_kind.streams:
        carry0 = initial_carry(spec.model, batch_size)
        carry_sharding = parallel.train_batch_sharding(mesh)
        carry = None
        for i, batch in enumerate(dataset.eval_stream(split, batch_size, chunk_len)):
            if max_batches is not None and i >= max_batches:
                break
            if carry is None or batch.get("reset", False):
                carry = parallel.put_global(
                    jax.tree.map(lambda c: np.broadcast_to(c, (num_seeds, *c.shape)), carry0),
                    carry_sharding,
                )
            batch = {k: batch[k] for k in ("inputs", "labels", "mask")}
            carry, sums = eval_stream_step(
                params, extra, carry, parallel.put_global(batch, eval_sharding), spec=spec
            )
            total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    else:
        for i, batch in enumerate(dataset.eval_batches(split, batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            batch = {k: batch[k] for k in ("inputs", "labels", "mask")}
            sums = eval_step(params, extra, parallel.put_global(batch, eval_sharding), spec=spec)
            total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    if total is None:
        raise ValueError(f"the {split} split of {dataset.info.get('name')} yielded no batches")
    return spec.model.task_kind.summarize(parallel.fetch(total))


__all__ = [
    "TrainState",
    "StepSpec",
    "eval_step",
    "eval_stream_step",
    "evaluate",
    "init_state",
    "train_step",
    "update_best",
]
