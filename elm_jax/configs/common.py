"""The trainer's config schema: every field with its default, shared by all experiment families.

`base_config()` returns a `ConfigDict` holding every field the trainer (`elm_jax.train`) reads,
so every field can be overridden on the command line (`--config.optim.learning_rate=1e-3`).
Fields that may be None are typed placeholders so that overriding them works too. `apply_variant("N=64,d_m=8")`
parses big_vision-style variant strings with the short names of the scaling paper.
"""

from __future__ import annotations

import dataclasses
import typing

import ml_collections
from ml_collections.config_dict import placeholder

from elm_jax.configs.variant import VariantError, coerce, parse_variant
from elm_jax.models import ModelConfig

# Short names accepted in variant strings -> dotted config paths.
ALIASES = {
    "N": "model.num_neurons",
    "d_m": "model.num_memory",
    "k_c": "model.synapses_per_neuron",
    "d_tree": "model.num_branches",
    "arch": "model.arch",
    "D": "model.embed_dim",
    "bin_ms": "data.bin_ms",
    "seq_len": "data.seq_len",
    "batch": "data.batch_size",
    "lr": "optim.learning_rate",
    "steps": "num_train_steps",
}


def _placeholder_type(annotation: typing.Any) -> type:
    """The non-None type of an `X | None` annotation (int, float, str, bool or tuple)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = (typing.get_origin(args[0]) or args[0]) if args else str
    return base if base in (int, float, str, bool, tuple) else object


def model_fields() -> ml_collections.ConfigDict:
    """Every `elm_jax.models.ModelConfig` field with its default (None → typed placeholder)."""
    hints = typing.get_type_hints(ModelConfig)
    out = ml_collections.ConfigDict()
    for field in dataclasses.fields(ModelConfig):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        if default is None:
            out[field.name] = placeholder(_placeholder_type(hints.get(field.name, str)))
        else:
            out[field.name] = default
    return out


def base_config() -> ml_collections.ConfigDict:
    """All trainer fields with neutral defaults; experiment files override what they need."""
    c = ml_collections.ConfigDict()
    c.model = model_fields()

    c.data = ml_collections.ConfigDict()
    c.data.name = "shd_adding"
    c.data.data_dir = placeholder(str)
    c.data.bin_ms = 10.0
    c.data.seq_len = 256
    c.data.batch_size = 8
    c.data.eval_batch_size = 64
    c.data.input_dropout = 0.0
    # LM: train on contiguous streams with the recurrent state carried between batches
    # (truncated BPTT), matching the carried-state evaluation; False: random windows from zero.
    c.data.carry_train_state = False
    # LM evaluation: contiguous chunks with carried state (docs/science.md §5); a cap on chunks
    # for the periodic validation only (None: the whole split), and for the final test
    # evaluation.
    c.data.eval_chunk_len = placeholder(int)
    c.data.val_max_batches = placeholder(int)
    c.data.test_max_batches = placeholder(int)

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adamax"
    c.optim.learning_rate = 5e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 0
    c.optim.clip_norm = placeholder(float)
    c.optim.weight_decay = 0.0
    c.optim.final_lr_fraction = 0.0
    # One peak learning rate per seed (inject_hyperparams); empty: optim.learning_rate for all.
    c.optim.seed_learning_rates = ()

    c.parallel = ml_collections.ConfigDict()
    c.parallel.replica_devices = 0  # devices along the seed axis; 0: gcd(#seeds, #devices)
    c.parallel.distributed = False  # call jax.distributed.initialize() (multi-host)
    c.parallel.sync_every = 8  # host sync every few steps (bounds queued work; see docs)

    # Live curves (elm_jax/writers.py): TensorBoard event files beside metrics.jsonl, and
    # W&B ("offline", needs the wandb extra; "": off). Not part of a trial's identity.
    c.logging = ml_collections.ConfigDict()
    c.logging.tensorboard = True
    c.logging.wandb = ""

    c.num_train_steps = 1000
    c.log_every = 50
    c.eval_every = 250
    c.checkpoint_every = 250
    c.keep_checkpoints = 2
    c.seeds = (0,)
    # Each seed's synaptic wiring is drawn from model.wiring_seed + seed, so that the spread
    # across seeds includes the wiring's (docs/science.md §8); False: model.wiring_seed for
    # every seed.
    c.wiring_follows_seed = True
    return c


def apply_variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies `key=value,...` (short names from ALIASES or dotted config paths) to `config`.

    The syntax is `elm_jax.configs.variant`'s (brackets or continuation items for lists); each
    value is checked against the type of the field it replaces.

    Raises:
      VariantError (a ValueError): a malformed item, an unknown key, or a value of the wrong type.
    """
    what = "config variant"
    for key, (text, value) in parse_variant(arg, what=what).items():
        path = ALIASES.get(key, key)
        node = config
        *parents, leaf = path.split(".")
        for p in parents:
            if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
                raise VariantError(f"{what} key {key!r}: no field {path!r}; {_valid_keys(config)}")
            node = node[p]
        if leaf not in node:
            valid = f"valid: {', '.join(sorted(node))}" if parents else _valid_keys(config)
            raise VariantError(f"{what} key {key!r}: no field {path!r}; {valid}")
        if isinstance(node[leaf], ml_collections.ConfigDict):
            raise VariantError(
                f"{what} key {key!r} is a group of fields ({', '.join(sorted(node[leaf]))}); "
                f"set one of them: {path}.FIELD=value"
            )
        node[leaf] = coerce(key, text, value, node[leaf], node.get_type(leaf), what)
    return config


def _valid_keys(config: ml_collections.ConfigDict) -> str:
    groups = sorted(k for k in config if isinstance(config[k], ml_collections.ConfigDict))
    return f"short names: {', '.join(sorted(ALIASES))}; or a dotted path into {', '.join(groups)}"


def to_plain(config: ml_collections.ConfigDict) -> dict:
    """A JSON-ready nested dict (tuples → lists)."""

    def conv(v: typing.Any) -> typing.Any:
        if isinstance(v, ml_collections.ConfigDict):
            return {k: conv(v[k]) for k in sorted(v.keys())}
        if isinstance(v, dict):
            return {k: conv(x) for k, x in sorted(v.items())}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        return v

    return conv(config)


__all__ = ["ALIASES", "apply_variant", "base_config", "model_fields", "to_plain"]
