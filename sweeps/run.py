"""Command line: run (or resume) a sweep into a directory.

    python -m sweeps.run --sweep sweeps/configs/default.py[:args] --dir DIR \
        [--workers K|auto] [--backend local|ray|slurm] [--ray-address ADDR] [--add-points] \
        [--slurm-partition P --slurm-gpus-per-task G --slurm-time-min M ...] [--shard I/K]

`--sweep` takes a config file path or the name of a file in sweeps/configs/ (`default`, `tiny`,
`shd_adding:budgets=1e3,1e4`, ...); the text after `:` is passed to its `get_config(arg)`.
Running the same command again resumes: finished trials are skipped and interrupted trainer
calls continue from their checkpoints. `--shard I/K` runs shard I of K (sweeps/shard.py), for
hosts that each run the same command (a TPU pod slice, a SLURM array); their directories merge
into one with sweeps.merge. A sweep config with a `sequential` block trains its budgets in
ascending order and places each from the results before it (sweeps/sequential.py), so this
module reads the analysis and sits above it (tests/test_layering.py). See docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import ml_collections

from elm_jax import cli
from elm_jax.runtime import enable_compilation_cache
from sweeps import backends, engine, progress, sequential, store
from sweeps import shard as shard_lib
from sweeps.points import make_trials
from sweeps.ray_options import parse_resources

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
REQUIRED_FIELDS = ("name", "task", "seeds", "train")


@dataclasses.dataclass(frozen=True)
class LoadedSweep:
    """A sweep definition: its config, points and where it came from."""

    source: str
    config: Any
    points: tuple[Any, ...]


def available_sweeps() -> list[str]:
    """Names of the sweep configs shipped in sweeps/configs/."""
    return sorted(
        n[:-3] for n in os.listdir(CONFIG_DIR) if n.endswith(".py") and not n.startswith("_")
    )


def _import_file(path: str) -> ModuleType:
    name = "sweep_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise ValueError(f"sweep config {path} line {err.lineno}: {err.msg}") from err
    return module


def load_sweep(spec: str) -> LoadedSweep:
    """Loads `path.py[:arg]` or `name[:arg]`, calls get_config(arg) and get_sweep(config).

    Raises:
      ValueError: unknown sweep, a config without the required fields, or a sweep whose
        budgets admit no point (raised by the config's get_sweep).
    """
    target, sep, arg = spec.partition(":")
    path = target if target.endswith(".py") else os.path.join(CONFIG_DIR, target + ".py")
    if not os.path.isfile(path):
        raise ValueError(
            f"--sweep={spec!r}: no sweep config at {path!r}; shipped sweeps: "
            f"{', '.join(available_sweeps())} (or give a path to a .py file with get_config "
            "and get_sweep)"
        )
    module = _import_file(path)
    for fn in ("get_config", "get_sweep"):
        if not callable(getattr(module, fn, None)):
            raise ValueError(f"--sweep={spec!r}: {path!r} defines no {fn}()")
    config = module.get_config(arg if sep else None)
    missing = [f for f in REQUIRED_FIELDS if f not in config]
    if missing:
        raise ValueError(f"--sweep={spec!r}: get_config() result lacks fields {missing}")
    points = tuple(module.get_sweep(config))
    if not points:
        raise ValueError(f"--sweep={spec!r}: get_sweep() returned no points")
    return LoadedSweep(source=spec, config=config, points=points)


def make_backend(args: argparse.Namespace) -> Any:
    """The backend named by the flags (Ray connects here, before any training)."""
    # Ray and SLURM place groups on their own devices: --workers only caps the groups in flight.
    in_flight = args.workers if isinstance(args.workers, int) else None
    if args.backend == "ray":
        return backends.RayBackend(
            args.ray_address,
            cpus_per_task=args.ray_num_cpus,
            gpus_per_task=args.ray_num_gpus,
            resources=parse_resources(args.ray_resources),
            max_in_flight=in_flight,
            max_retries=args.max_retries,
        )
    if args.backend == "slurm":
        return backends.SlurmBackend(
            args.slurm_folder or os.path.join(os.path.abspath(args.dir), "slurm"),
            partition=args.slurm_partition,
            gpus_per_task=args.slurm_gpus_per_task,
            cpus_per_task=args.slurm_cpus_per_task,
            time_min=args.slurm_time_min,
            mem_gb=args.slurm_mem_gb,
            max_in_flight=in_flight,
            max_retries=args.max_retries,
            cluster=args.slurm_cluster,
            job_name=f"sweep-{os.path.basename(os.path.abspath(args.dir))}",
        )
    if args.slurm_partition is not None:
        raise ValueError("--slurm-partition needs --backend=slurm")
    for flag in ("ray_address", "ray_num_cpus", "ray_num_gpus", "ray_resources"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} needs --backend=ray")
    workers = local_workers(args.workers, args.shard)
    if workers == 1:
        return backends.LocalBackend()
    return backends.ProcessPoolBackend(workers, max_retries=args.max_retries)


def local_workers(workers: int | str | None, shard: shard_lib.Shard | None) -> int:
    """Groups trained at once on this host: `--workers`, where `auto` (the default with
    `--shard`) is one per local device (GPU, TPU chip, or forced CPU device)."""
    if workers == "auto" or (workers is None and shard is not None):
        return len(backends.local_devices()[1]) or 1
    return 1 if workers is None else int(workers)


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer >= 1 or 'auto' (one group per local device)"
        ) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.ArgumentParser(prog="sweeps.run", description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", required=True, help="config path or name, optionally :arg")
    parser.add_argument(
        "--dir", required=True, help="sweep directory (created; resumed if present)"
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="parallel groups, one device each; auto: one per local device (default with --shard)",
    )
    parser.add_argument("--backend", choices=("local", "ray", "slurm"), default="local")
    parser.add_argument("--ray-address", default=None, help="existing Ray cluster (host:port|auto)")
    parser.add_argument("--ray-num-cpus", type=float, default=None, help="CPUs per Ray task")
    parser.add_argument("--ray-num-gpus", type=float, default=None, help="GPUs per Ray task")
    parser.add_argument(
        "--ray-resources", default=None, help='custom resources per Ray task (JSON: {"TPU": 4})'
    )
    slurm = parser.add_argument_group("SLURM (--backend slurm, through submitit; docs/sweeps.md)")
    slurm.add_argument("--slurm-partition", default=None, help="partition (default: the cluster's)")
    slurm.add_argument("--slurm-gpus-per-task", type=int, default=1, help="GPUs per group")
    slurm.add_argument("--slurm-cpus-per-task", type=int, default=4, help="CPUs per group")
    slurm.add_argument("--slurm-time-min", type=int, default=240, help="time limit per job")
    slurm.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per job")
    slurm.add_argument(
        "--slurm-cluster", choices=("slurm", "local"), default="slurm", help="local: no SLURM"
    )
    slurm.add_argument("--slurm-folder", default=None, help="job logs (default DIR/slurm)")
    parser.add_argument("--add-points", action="store_true", help="add new trials to a sweep dir")
    parser.add_argument("--retry-failed", action="store_true", help="train failed trials again")
    parser.add_argument("--max-retries", type=int, default=2, help="retries after a lost worker")
    parser.add_argument(
        "--train-fn",
        default=None,
        help="module:function used instead of elm_jax.train.loop:train_and_evaluate",
    )
    parser.add_argument("--quiet", action="store_true", help="log to the sweep dir only")
    parser.add_argument(
        "--wandb", choices=("offline",), default=None, help="also W&B offline runs (extra wandb)"
    )
    parser.add_argument(
        "--kernel",
        choices=("auto", "xla", "cpu_fused", "gpu_pallas"),
        default=None,
        help="the ELM recurrence's implementation for every trial (default: the config's, auto)",
    )
    parser.add_argument(
        "--shard",
        default=None,
        metavar="I/K",
        help="run shard I of K of the sweep's trainer calls (0 <= I < K; hosts of one job)",
    )
    parser.add_argument(
        "--check", action="store_true", help="validate the sweep and its points; train nothing"
    )
    args = parser.parse_args(argv)
    if isinstance(args.workers, int) and args.workers < 1:
        parser.error(f"--workers={args.workers}; must be >= 1")
    if args.shard is not None:
        try:
            args.shard = shard_lib.Shard.parse(args.shard)
        except ValueError as e:
            parser.error(str(e))
    if args.shard is not None and args.add_points:
        parser.error(
            "--add-points cannot be combined with --shard: added trials change every shard's "
            "assignment; merge the shard directories (python -m sweeps.merge) and add the "
            "points to the merged directory"
        )
    if args.max_retries < 0:
        parser.error(f"--max-retries={args.max_retries}; must be >= 0")
    if args.train_fn is not None:
        problem = train_fn_problem(args.train_fn)
        if problem:
            parser.error(f"--train-fn={args.train_fn}: {problem}")
    return args


def train_fn_problem(spec: str) -> str | None:
    """Why `module:function` does not name a callable (None when it does)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        return "expected module:function, e.g. elm_jax.train.loop:train_and_evaluate"
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        return f"cannot import {module_name} ({err})"
    if not callable(getattr(module, attr, None)):
        return f"{module_name} has no function {attr}"
    return None


def _set_train_field(train_config: Any, group: str, name: str, value: Any) -> None:
    """Sets ``train_config.<group>.<name>`` (creating the group), unless `value` is None."""
    if value is None:
        return
    with train_config.unlocked():
        if group not in train_config:
            train_config[group] = ml_collections.ConfigDict()
        train_config[group][name] = value


def set_wandb(train_config: Any, mode: str | None) -> None:
    """Sets `logging.wandb` of the sweep's trainer config (not part of any trial's identity)."""
    _set_train_field(train_config, "logging", "wandb", mode)


def set_kernel(train_config: Any, kernel: str | None) -> None:
    """Sets the ELM recurrence's kernel (`model.kernel`) of every trial; part of the trials'
    trainer config, so a sweep directory never mixes kernels."""
    _set_train_field(train_config, "model", "kernel", kernel)


def check_sweep(args: argparse.Namespace) -> LoadedSweep:
    """Loads the sweep and checks every trial's trainer config (no directory, data or training)."""
    loaded = load_sweep(args.sweep)
    set_wandb(loaded.config.train, args.wandb)
    set_kernel(loaded.config.train, args.kernel)
    if args.train_fn is None:
        engine.validate_sweep(loaded.config.train, loaded.points, list(loaded.config.seeds))
    return loaded


def shard_summary(loaded: LoadedSweep, shard: shard_lib.Shard) -> list[str]:
    """The lines `--check` prints for `--shard`: the shard's trainer calls and cost shares."""
    cfg = loaded.config
    trials = make_trials(loaded.points, list(cfg.seeds), cfg.train, cfg.task)
    return shard_lib.summary(shard_lib.assign(trials, cfg.train, shard.count), shard.index)


def _usage_error(e: ValueError) -> int:
    """One line on stderr for a sweep that cannot be planned; its exit code (re-raised under
    debug)."""
    if cli.debug_requested():
        raise e
    print(f"sweeps.run: error: {cli.one_line(e)}", file=sys.stderr)
    return cli.exit_code(e)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the sweep; returns the process exit code (0 when every trial has a record)."""
    args = parse_args(argv)
    if args.check:
        loaded = check_sweep(args)
        print(f"{loaded.source}: {len(loaded.points)} points x {len(loaded.config.seeds)} seeds")
        if sequential.is_sequential(loaded.config):
            print("\n".join(sequential.describe(loaded.config)))
        if args.shard is not None:
            print("\n".join(shard_summary(loaded, args.shard)))
        return 0
    try:
        loaded = load_sweep(args.sweep)
        set_wandb(loaded.config.train, args.wandb)
        set_kernel(loaded.config.train, args.kernel)
        root = store.check_writable(args.dir)
        store.SweepStore(root).create_dirs()
        progress.setup_logging(store.SweepStore(root).log_path, verbose=not args.quiet)
        cfg = loaded.config
        is_sequential = sequential.is_sequential(cfg)
        if is_sequential:
            refuse_with_sequential(args)
        if args.train_fn is None:
            engine.validate_sweep(cfg.train, loaded.points, list(cfg.seeds))
        backend = make_backend(args)
        logged: set = set()  # the placements of a sequential sweep already logged
        plan = plan_definition(args, loaded, root, logged)
    except ValueError as e:
        return _usage_error(e)
    start = time.time()
    while True:
        run_plan(args, cfg, root, plan, backend)
        if not is_sequential:
            break
        # a sequential sweep grows as budgets finish: place the next stage and run it
        try:
            before = {t.trial_id for t in plan.trials}
            plan = plan_definition(args, loaded, root, logged)
        except ValueError as e:
            return _usage_error(e)
        if not plan.groups and {t.trial_id for t in plan.trials} == before:
            break
    frame = plan.store.rebuild_table(plan.sweep_trial_ids)
    engine.log.info(
        "sweep %s finished in %.1f s: %d rows (%s) -> %s",
        cfg.name,
        time.time() - start,
        len(frame),
        frame["status"].value_counts().to_dict() if len(frame) else {},
        plan.store.results_path,
    )
    missing = len({t.trial_id for t in plan.trials} - plan.store.finished_ids())
    if missing:
        print(f"sweeps.run: error: {missing} trials have no record", file=sys.stderr)
        return 1
    print(plan.store.results_path)
    return 0


def refuse_with_sequential(args: argparse.Namespace) -> None:
    """Flags a sequential sweep cannot take: its definition grows from its own records."""
    for flag, given, why in (
        ("--shard", args.shard is not None, "each budget waits for the ones before it"),
        ("--add-points", args.add_points, "the sweep adds its own points as budgets finish"),
        (
            "--retry-failed",
            args.retry_failed,
            "a retried trial would change the results the later budgets were placed from",
        ),
    ):
        if given:
            raise ValueError(f"{flag} cannot be used with a sequential sweep: {why}")


def plan_definition(
    args: argparse.Namespace, loaded: LoadedSweep, root: str, logged: set | None = None
) -> engine.Plan:
    """The plan of the sweep's definition: its points, or for a sequential sweep every budget
    the records allow placing so far (the new points' configs checked first)."""
    cfg = loaded.config
    points = loaded.points
    if sequential.is_sequential(cfg):
        points = tuple(sequential.build_definition(cfg, loaded.points, root, logged).points)
        if args.train_fn is None:
            engine.validate_sweep(cfg.train, points[len(loaded.points) :], list(cfg.seeds))
    return engine.plan_sweep(
        name=cfg.name,
        task=cfg.task,
        source=loaded.source,
        train_config=cfg.train,
        points=points,
        seeds=list(cfg.seeds),
        directory=root,
        add_points=args.add_points or sequential.is_sequential(cfg),
        retry_failed=args.retry_failed,
        train_fn=args.train_fn or engine.DEFAULT_TRAIN_FN,
        shard=args.shard,
    )


def run_plan(
    args: argparse.Namespace, cfg: Any, root: str, plan: engine.Plan, backend: Any
) -> None:
    """Trains a plan's groups on the backend, with progress lines."""
    with_progress = progress.Progress(
        len(plan.trials), len(plan.finished), parallelism=backend.parallelism
    )
    with_progress.set_pending(len(plan.groups))
    engine.log.info(
        "sweep %s in %s%s: %d trials, %d finished, %d trainer calls to run on %s",
        cfg.name,
        root,
        f" (shard {args.shard} of the sweep's {len(plan.sweep_trial_ids)} trials)"
        if args.shard
        else "",
        len(plan.trials),
        len(plan.finished),
        len(plan.groups),
        type(backend).__name__,
    )
    if plan.groups and args.train_fn is None:
        enable_compilation_cache()
    engine.run_groups(plan.groups, backend, with_progress)


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="sweeps.run"))
