"""Command line: parse flags, enable the compilation cache, call `train_and_evaluate`.

    python -m elm_jax.main --config=elm_jax/configs/shd_adding.py:N=64,d_m=8,k_c=16 \
        --workdir=runs/shd_adding --config.optim.learning_rate=3e-3

`--check` validates the config (fields, types, model, optimizer, dataset name and options) and
prints it as JSON without loading data or training. Bad input fails with one line on stderr
and exit code 2 (docs/cli.md); `--debug` shows the traceback.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from elm_jax import cli
from elm_jax.config_check import check_config
from elm_jax.configs.common import to_plain
from elm_jax.runtime import enable_compilation_cache
from elm_jax.train.loop import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Experiment config file, e.g. elm_jax/configs/smoke.py[:variant].",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and summary.")
_CACHE = flags.DEFINE_string("compilation_cache", None, "JAX compilation cache directory.")
_CHECK = flags.DEFINE_bool("check", False, "Validate the config and print it; train nothing.")
PROG = "elm_jax.main"
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def _config_arg(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def check_config_file(spec: str) -> Any:
    """Loads `FILE.py[:variant]` as absl will (its config), failures as one-line UsageErrors."""
    path, sep, variant = spec.partition(":")
    if not path.endswith(".py") or not os.path.isfile(path):
        shipped = sorted(n for n in os.listdir(CONFIG_DIR) if n.endswith(".py") and n[0] != "_")
        shipped = [n for n in shipped if n not in ("common.py", "variant.py")]
        raise cli.UsageError(
            f"--config={spec}: no config file {path!r}; valid: a .py file with get_config(), "
            f"e.g. elm_jax/configs/{{{','.join(shipped)}}}"
        )
    module_spec = importlib.util.spec_from_file_location("elm_config_check", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as err:
        raise cli.UsageError(f"--config={spec}: {path} line {err.lineno}: {err.msg}") from err
    if not callable(getattr(module, "get_config", None)):
        raise cli.UsageError(f"--config={spec}: {path} defines no get_config()")
    try:
        return module.get_config(*([variant] if sep else []))
    except ValueError as err:
        raise cli.UsageError(f"--config={spec}: {cli.one_line(err)}") from err


def _override_error(config: Any, argv: list[str], err: Exception) -> cli.UsageError:
    """A one-line message for a failed `--config.PATH=VALUE` naming the field and its type."""
    message = [line.strip() for line in str(err).splitlines() if line.strip()]
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        path, _, value = arg[len("--config.") :].partition("=")
        node, ok = config, True
        for part in path.split("."):
            ok = ok and hasattr(node, "keys") and part in node
            node = node[part] if ok else None
        if not ok:
            return cli.UsageError(
                f"--config.{path}={value}: no such config field; see the config file "
                "(or --check) for valid fields"
            )
        if message and path in " ".join(message):
            detail = message[-1].split(f"={value}: ", 1)[-1]
            kind = type(node).__name__ if node is not None else "the field's type"
            return cli.UsageError(
                f"--config.{path}={value}: {detail}; valid: a value of type {kind}"
            )
    return cli.UsageError(message[-1] if message else str(err))


def _parse_flags(argv: list[str]) -> list[str]:
    """absl parsing, with every failure (file, variant, override, unknown flag) as a UsageError."""
    spec = _config_arg(argv[1:])
    config = check_config_file(spec) if spec is not None else None
    try:
        rest = flags.FLAGS(argv)
    except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as err:
        raise _override_error(config, argv[1:], err) from err
    missing = [name for name in ("config", "workdir") if flags.FLAGS[name].value is None]
    if _CHECK.value and missing == ["workdir"]:
        missing = []
    if missing:
        raise cli.UsageError(f"missing flag(s) {', '.join('--' + m for m in missing)}")
    if len(rest) > 1:
        raise cli.UsageError(f"unexpected arguments {rest[1:]}; flags are --name=value")
    return rest


def check(config: Any) -> dict:
    """Everything `train_and_evaluate` validates before reading data; returns the resolved config.

    Raises:
      ValueError: listing every problem (`elm_jax.config_check`).
    """
    return to_plain(check_config(config).cfg)


def check_workdir(workdir: str) -> None:
    """Fails before any data is read when the workdir could not be created or written."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise cli.UsageError(f"--workdir={workdir}: is a file; choose a directory")
    probe = os.path.abspath(workdir)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise cli.UsageError(
            f"--workdir={workdir}: {probe} is not a writable directory; choose a directory you "
            "can write to"
        )


def main(argv: list[str]) -> None:
    del argv  # checked by _parse_flags
    if _CHECK.value:
        print(json.dumps(check(_CONFIG.value)))
        return
    check(_CONFIG.value)
    check_workdir(_WORKDIR.value)
    # absl shows INFO records; jax's backend probing ("Unable to initialize backend 'tpu'") is noise.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    enable_compilation_cache(_CACHE.value)
    summary = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    keys = ("status", "reason", "steps", "wall_s", "metric_name")
    print(json.dumps({k: summary[k] for k in keys} | {"seeds": summary["seeds"]}))


def _absl_main(args: list[str]) -> None:
    app.run(main, argv=[sys.argv[0], *args], flags_parser=_parse_flags)


if __name__ == "__main__":
    sys.exit(cli.run(_absl_main, prog=PROG))
