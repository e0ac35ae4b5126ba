"""Command line: parse flags, enable the compilation cache, call `train_and_evaluate`.

    python -m elm_jax.main --config=elm_jax/configs/shd_adding.py:N=64,d_m=8,k_c=16 \
        --workdir=runs/shd_adding --config.optim.learning_rate=3e-3
"""

from __future__ import annotations

import json
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Experiment config file, e.g. elm_jax/configs/smoke.py[:variant].",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and summary.")
_CACHE = flags.DEFINE_string("compilation_cache", None, "JAX compilation cache directory.")
flags.mark_flags_as_required(["config", "workdir"])


def _parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with an unknown `--config.<field>` turned into a one-line message."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        sys.exit(f"FATAL flags: {err}")
    except (KeyError, AttributeError) as err:
        bad = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
        sys.exit(
            f"FATAL: unknown config field {err} in {bad}; see the config file for valid fields"
        )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from elm_jax.runtime import enable_compilation_cache

    enable_compilation_cache(_CACHE.value)
    from elm_jax.train import train_and_evaluate

    summary = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    keys = ("status", "reason", "steps", "wall_s", "metric_name")
    print(json.dumps({k: summary[k] for k in keys} | {"seeds": summary["seeds"]}))


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
