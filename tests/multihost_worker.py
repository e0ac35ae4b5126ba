"""One process of a multi-process training run on the loopback (started by test_multihost.py).

    python tests/multihost_worker.py --process-id I --num-processes P --port PORT \
        --workdir DIR --out OUT.json [--stop-after STEP]

The caller sets the device environment (`JAX_PLATFORMS=cpu`, fake host devices in XLA_FLAGS).
With P > 1 the process joins a `jax.distributed` job coordinated on 127.0.0.1:PORT with CPU
collectives over gloo, then trains the tiny LM config of train_helpers with seeds (0, 1) into the
shared DIR. It records every file write the trainer makes from this process and writes
OUT.json: process index and count, devices, writes, and the summary's status and seed rows.
`--stop-after STEP` raises from the step hook after update STEP (an interrupted run; exit 3).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

STOPPED_EXIT = 3


class Stopped(Exception):
    """Raised by the step hook to interrupt the run after a given update."""


def _record_writes(log: list[str]) -> None:
    """Wraps the trainer's file writers so that each call from this process is logged."""
    from elm_jax import files, metrics

    write_json, write_line = files.write_json_atomic, metrics.JsonLinesWriter.write
    truncate = metrics.JsonLinesWriter.truncate_after

    def json_atomic(path, *args, **kwargs):
        log.append(os.path.basename(path))
        return write_json(path, *args, **kwargs)

    def line(self, *args, **kwargs):
        log.append(f"{os.path.basename(self.path)}:write")
        return write_line(self, *args, **kwargs)

    def truncated(self, *args, **kwargs):
        log.append(f"{os.path.basename(self.path)}:truncate")
        return truncate(self, *args, **kwargs)

    files.write_json_atomic = json_atomic
    metrics.JsonLinesWriter.write = line
    metrics.JsonLinesWriter.truncate_after = truncated


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stop-after", type=int, default=None)
    args = parser.parse_args()

    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.num_processes > 1:
        address = f"127.0.0.1:{args.port}"
        jax.distributed.initialize(
            coordinator_address=address,
            num_processes=args.num_processes,
            process_id=args.process_id,
            coordinator_bind_address=address,
            initialization_timeout=60,
            heartbeat_timeout_seconds=30,
            shutdown_timeout_seconds=30,
        )
    from elm_jax.runtime import enable_compilation_cache

    enable_compilation_cache()
    import train_helpers as th

    from elm_jax.train.loop import train_and_evaluate

    writes: list[str] = []
    _record_writes(writes)

    def hook(step: int) -> None:
        if args.stop_after is not None and step == args.stop_after:
            raise Stopped(f"stopped after update {step}")

    config = th.lm_config(seeds=(0, 1))
    config.parallel.distributed = args.num_processes > 1  # already initialised: a no-op
    result = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "local_devices": jax.local_device_count(),
        "global_devices": jax.device_count(),
        "writes": writes,
    }
    code = 0
    try:
        summary = train_and_evaluate(
            config, args.workdir, dataset=th.byte_dataset(), step_hook=hook
        )
        result.update(status=summary["status"], seeds=summary["seeds"])
    except Stopped as err:
        result.update(status="stopped", seeds=None, reason=str(err))
        code = STOPPED_EXIT
    with open(args.out, "w") as f:
        json.dump(result, f)
    return code


if __name__ == "__main__":
    sys.exit(main())
