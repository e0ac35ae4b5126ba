"""Fast stand-ins for the trainer used by the sweep-engine unit tests (not the real trainer).

They follow the trainer's contract (docs/interfaces.md): `fn(config, workdir) -> summary` and
`workdir/summary.json`, with metrics that are a planted function of (N, d_m, seed), so a test
can check every row of the table against its expected value.
"""

from __future__ import annotations

import json
import os
import signal


def planted_metric(num_neurons: int, num_memory: int, seed: int) -> float:
    """The accuracy the fake trainer reports for one seed."""
    return round(0.01 * num_neurons + 0.001 * num_memory + 0.0001 * seed, 6)


def _count_call(workdir: str) -> None:
    calls_dir = os.path.join(os.path.dirname(os.path.dirname(workdir)), "fake_calls")
    os.makedirs(calls_dir, exist_ok=True)
    with open(os.path.join(calls_dir, os.path.basename(workdir)), "a") as f:
        f.write(f"{os.getpid()}\n")


def fake_train(config, workdir: str) -> dict:
    """Writes and returns a summary with planted metrics; status diverged for seed 13."""
    _count_call(workdir)
    seeds = []
    for seed in config.seeds:
        metric = planted_metric(config.model.num_neurons, config.model.num_memory, seed)
        diverged = seed == 13
        seeds.append(
            {
                "seed": seed,
                "status": "diverged" if diverged else "ok",
                "reason": "loss is NaN at step 3" if diverged else None,
                "diverged_step": 3 if diverged else None,
                "best_step": config.num_train_steps,
                "val_loss": 1.0 - metric,
                "val_metric": metric,
                "test_loss": 1.5 - metric,
                "test_metric": metric - 0.01,
            }
        )
    summary = {
        "status": "ok",
        "reason": None,
        "config": {},
        "model": {"arch": config.model.arch, "N": config.model.num_neurons},
        "cost": {
            "P_core": 111,
            "P_io": 22,
            "P_total": 133,
            "flops_per_step": 10.0,
            "flops_train_step": 30.0,
            "k_e": 1,
            "k_c": 2,
        },
        "data": {"source": "shd-default", "seq_len": 40},
        "steps": config.num_train_steps,
        "wall_s": 0.01,
        "seeds": seeds,
        "metric_name": "accuracy",
    }
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f)
    return summary


def device_train(config, workdir: str) -> dict:
    """Records in `workdir/devices.json` what this process sees (pid, JAX's devices, XLA_FLAGS),
    then trains as `fake_train`."""
    import jax

    seen = {
        "pid": os.getpid(),
        "platform": jax.devices()[0].platform,
        "local_device_count": jax.local_device_count(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }
    with open(os.path.join(workdir, "devices.json"), "w") as f:
        json.dump(seen, f)
    return fake_train(config, workdir)


def failing_train(config, workdir: str) -> dict:
    """Raises for architectures with N == 3 (a trainer bug must become a failed row)."""
    if config.model.num_neurons == 3:
        raise RuntimeError("planted trainer error for N=3")
    return fake_train(config, workdir)


def crash_once_train(config, workdir: str) -> dict:
    """Kills its own process (as the OOM killer would) the first time it sees a group."""
    marker = os.path.join(workdir, "crashed-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_train(config, workdir)


def get_config(arg: str | None = None):
    """A sweep over planted points for the engine tests: `npoints=3,seeds=2,steps=5`."""
    import ml_collections

    options = {"npoints": 3, "seeds": 2, "steps": 5}
    for item in (arg or "").split(","):
        if item:
            key, value = item.split("=")
            options[key] = int(value)
    config = ml_collections.ConfigDict()
    config.name = "fake"
    config.task = "shd_adding"
    config.seeds = tuple(range(options["seeds"]))
    config.npoints = options["npoints"]
    train = ml_collections.ConfigDict()
    train.model = ml_collections.ConfigDict(
        {"arch": "elm", "num_neurons": 1, "num_memory": 1, "synapses_per_neuron": 4}
    )
    train.data = ml_collections.ConfigDict(
        {"name": "shd_adding_default", "bin_ms": 10.0, "batch_size": 8}
    )
    train.num_train_steps = options["steps"]
    train.seeds = (0,)
    config.train = train
    return config


def get_sweep(config):
    """`npoints` points in two budgets (1000 and 2000), N = 2, 3, 4, ..."""
    from sweeps.points import SweepPoint

    points = []
    for i in range(config.npoints):
        n = 2 + i
        budget = 1000.0 if i % 2 == 0 else 2000.0
        points.append(
            SweepPoint(
                slice="budget",
                budget=budget,
                budget_kind="core",
                arch="elm",
                N=n,
                d_m=i + 1,
                k_c=4,
                k_e=10 * (i + 1),
                d_tree=4,
                P_core=100 * n,
                P_io=10,
                P_total=100 * n + 10,
                flops_per_step=1.0,
                model=(("num_neurons", n), ("num_memory", i + 1)),
            )
        )
    return points


def write_tiny_shd(directory: str, num_train: int = 64, num_test: int = 24, seed: int = 0) -> str:
    """Writes small SHD-format files (random spikes in [0, 1) s, labels 0..19) to `directory`.

    Real-format files, so the trainer goes through the real SHD loading path (source `shd`)
    in seconds instead of building the embedded default.
    """
    import numpy as np

    from elm_jax.data.shd.files import write_shd

    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for name, count in (("shd_train", num_train), ("shd_test", num_test)):
        labels = rng.integers(0, 20, size=count)
        times, units = [], []
        for label in labels:
            spikes = int(rng.integers(50, 150))
            # Label-dependent channels, so the task is learnable in principle.
            units.append(((label * 35 + rng.integers(0, 60, size=spikes)) % 700).astype(np.uint16))
            times.append(np.sort(rng.uniform(0.0, 0.99, size=spikes)).astype(np.float32))
        write_shd(os.path.join(directory, f"{name}.h5"), times, units, labels)
    return directory


def reporting_failure_train(config, workdir: str) -> dict:
    """A trainer that finishes but reports status failed for every seed (summary written)."""
    summary = fake_train(config, workdir)
    summary["status"] = "failed"
    summary["reason"] = "planted failure"
    for entry in summary["seeds"]:
        entry.update(status="failed", reason="planted failure")
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f)
    return summary


def _k_e(num_memory: int, d_tree: int = 4) -> int:
    return 4 * num_memory * num_memory + (2 * d_tree + 5) * num_memory + 1


def planted_law_loss(num_neurons: int, num_memory: int, k_c: int, seed: int, steps: int) -> float:
    """A planted loss whose budget optimum is an exact power law in P = N (k_e + k_c), with a
    small deterministic seed effect and a training-length effect (longer is better)."""
    import zlib

    k_e = _k_e(num_memory)
    clean = 1.5 + 1.0 * num_neurons**-0.3 + 4.0 * (k_e + k_c) ** -0.6
    jitter = (zlib.crc32(f"{num_neurons}/{num_memory}/{k_c}/{seed}".encode()) % 1000) / 1000.0
    return clean * (1.0 + 0.004 * (jitter - 0.5)) - 0.01 * (steps / 1000.0 - 1.0)


def law_train(config, workdir: str) -> dict:
    """A trainer for sequential sweeps: planted law losses (`planted_law_loss`), the real cost
    accounting of the point, the input-blind baseline, and in `seen.json` of the sweep
    directory whether predictions.json existed when each budget's group trained."""
    _count_call(workdir)
    m = config.model
    n, d_m, k_c = int(m.num_neurons), int(m.num_memory), int(m.synapses_per_neuron)
    k_e = _k_e(d_m)
    steps = int(config.num_train_steps)
    sweep_dir = os.path.dirname(os.path.dirname(workdir))
    seen_path = os.path.join(sweep_dir, "seen.json")
    seen = json.load(open(seen_path)) if os.path.exists(seen_path) else []
    seen.append(
        {"P_core": n * (k_e + k_c), "N": n, "steps": steps,
         "predictions": os.path.exists(os.path.join(sweep_dir, "predictions.json"))}
    )  # fmt: skip
    with open(seen_path, "w") as f:
        json.dump(seen, f)
    seeds = []
    for seed in config.seeds:
        loss = planted_law_loss(n, d_m, k_c, seed, steps)
        figures = {"val_loss": loss, "test_loss": loss * 1.01}
        seeds.append(
            {"seed": seed, "status": "ok", "reason": None, "best_step": steps,
             **figures, "val_metric": 0.5, "test_metric": 0.5,
             **{f"final_{k}": v for k, v in figures.items()},
             "final_val_metric": 0.5, "final_test_metric": 0.5}
        )  # fmt: skip
    P_core = n * (k_e + k_c)
    summary = {
        "status": "ok",
        "reason": None,
        "model": {"arch": "elm", "N": n, "kernel": "fake"},
        "cost": {"P_core": P_core, "P_io": 19 * n + 19, "P_total": P_core + 19 * n + 19,
                 "flops_per_step": 2.0 * P_core, "flops_train_step": 6.0 * P_core},
        "data": {"source": "shd-default", "seq_len": 40},
        "input_blind": {"validation": {"loss": 2.794, "metric": 0.1},
                        "test": {"loss": 2.794, "metric": 0.1}},
        "steps": steps,
        "wall_s": 0.01,
        "seeds": seeds,
        "metric_name": "accuracy",
    }  # fmt: skip
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f)
    return summary


def law_train_until(config, workdir: str) -> dict:
    """`law_train`, but the process kills itself at the first trainer call of a budget above
    5,350 (an interrupted sequential sweep)."""
    m = config.model
    if int(m.num_neurons) * (_k_e(int(m.num_memory)) + int(m.synapses_per_neuron)) > 6000:
        os.kill(os.getpid(), signal.SIGKILL)
    return law_train(config, workdir)
