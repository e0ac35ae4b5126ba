"""Where trial groups run: in this process, in a pool of worker processes, on Ray or SLURM.

Every backend has `run(tasks, progress)`, an iterator of `(task, outcome)` as groups finish.
A worker that dies (killed, out of memory, node lost) has its group handed out again up to
`max_retries` times; after that the group's trials are recorded as failed with the reason.
Nothing here imports JAX: worker processes must set their device environment first.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from sweeps.engine import GroupOutcome, GroupTask, execute_group, write_group_failure

log = logging.getLogger("sweeps")
BACKENDS = ("local", "ray", "slurm")


class LocalBackend:
    """Runs groups one after another in this process (the default, `--workers 1`)."""

    parallelism = 1

    def run(self, tasks: Sequence[GroupTask], progress: Any) -> Iterator[tuple[GroupTask, Any]]:
        for task in tasks:
            progress.started(task)
            outcome = execute_group(task)
            progress.finished(task, outcome)
            yield task, outcome


# --- process pool --------------------------------------------------------------------------


def detect_gpus() -> list[str]:
    """Indices of NVIDIA GPUs visible to this process (from `nvidia-smi`), without JAX."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip() not in ("", "-1")]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


# PCI ids of TPU chips (vendor Google 0x1ae0): v3, v4, v5p, v5e, v6e, TPU7x and one unnamed.
_GOOGLE_PCI_VENDOR = "0x1ae0"
_TPU_PCI_DEVICES = frozenset({"0x0027", "0x0056", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076"})
_FORCE_CPU_DEVICES = "--xla_force_host_platform_device_count"
# libtpu's default port; one single-chip process per chip needs one port each.
TPU_BASE_PORT = 8476


def detect_tpu_chips(pci_root: str = "/sys/bus/pci/devices") -> list[str]:
    """Indices of the TPU chips of this host, without JAX (which would take them all).

    `TPU_VISIBLE_CHIPS` when set, else the TPU chips on the PCI bus (how JAX counts them).
    """
    visible = os.environ.get("TPU_VISIBLE_CHIPS")
    if visible is not None:
        return [c.strip() for c in visible.split(",") if c.strip()]
    count = 0
    for vendor_path in glob.glob(os.path.join(pci_root, "*", "vendor")):
        device_path = os.path.join(os.path.dirname(vendor_path), "device")
        try:
            with open(vendor_path) as f:
                vendor = f.read().strip()
            if vendor != _GOOGLE_PCI_VENDOR:
                continue
            with open(device_path) as f:
                count += f.read().strip() in _TPU_PCI_DEVICES
        except OSError:
            continue
    return [str(i) for i in range(count)]


def forced_cpu_devices() -> int:
    """The CPU device count that `XLA_FLAGS=--xla_force_host_platform_device_count=N` asks for
    (1 without it)."""
    for flag in os.environ.get("XLA_FLAGS", "").split():
        name, _, value = flag.partition("=")
        if name == _FORCE_CPU_DEVICES and value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


def local_devices() -> tuple[str, list[str]]:
    """(`gpu` | `tpu` | `cpu`, device ids) of this host, found without JAX.

    GPUs (nvidia-smi or CUDA_VISIBLE_DEVICES), else TPU chips, else the CPU devices XLA_FLAGS
    forces (one by default). `JAX_PLATFORMS=cpu` means CPU whatever the host has.
    """
    if os.environ.get("JAX_PLATFORMS", "").strip().lower() != "cpu":
        gpus = detect_gpus()
        if gpus:
            return "gpu", gpus
        chips = detect_tpu_chips()
        if chips:
            return "tpu", chips
    return "cpu", [str(i) for i in range(forced_cpu_devices())]


def worker_env(index: int, gpus: Sequence[str], tpu_chips: Sequence[str] = ()) -> dict[str, str]:
    """Environment giving pool worker `index` one device: a GPU or a TPU chip of its own, or one
    CPU device."""
    if gpus:
        return {"CUDA_VISIBLE_DEVICES": gpus[index % len(gpus)]}
    if tpu_chips:
        # A one-chip TPU "slice" per process (as Ray pins one-chip tasks), each with its own port.
        return {
            "TPU_VISIBLE_CHIPS": tpu_chips[index % len(tpu_chips)],
            "TPU_CHIPS_PER_PROCESS_BOUNDS": "1,1,1",
            "TPU_PROCESS_BOUNDS": "1,1,1",
            "TPU_PROCESS_PORT": str(TPU_BASE_PORT + index),
            "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
        }
    replaced = (_FORCE_CPU_DEVICES, "--xla_cpu_multi_thread_eigen")
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(replaced)]
    # One CPU device per worker, single-threaded: K workers then share the cores by processes
    # instead of K thread pools fighting over them.
    flags += [
        f"{_FORCE_CPU_DEVICES}=1",
        "--xla_cpu_multi_thread_eigen=false",
        "intra_op_parallelism_threads=1",
    ]
    return {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(flags)}


def _die_with_parent() -> None:
    """Makes this worker exit when the sweep process dies, so no orphan keeps training."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    parent = os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _pool_worker(index: int, env: dict[str, str], inbox: Any, outbox: Any) -> None:
    os.environ.update(env)
    _die_with_parent()
    with contextlib.suppress(ImportError):
        # Here, in the worker, after its environment is set and before it trains.
        from elm_jax.runtime import enable_compilation_cache

        enable_compilation_cache()
    while True:
        task = inbox.get()
        if task is None:
            return
        try:
            outbox.put((index, task.group_id, "ok", execute_group(task)))
        except Exception:
            outbox.put((index, task.group_id, "error", traceback.format_exc()))


class ProcessPoolBackend:
    """`--workers K`: K worker processes, one device each (a GPU, a TPU chip or one CPU device;
    `worker_env`), fed one group at a time."""

    def __init__(self, workers: int, max_retries: int = 2, poll_s: float = 0.5):
        if workers < 1:
            raise ValueError(f"--workers={workers}; must be >= 1")
        self.parallelism = workers
        self.max_retries = max_retries
        self.poll_s = poll_s
        kind, devices = local_devices()
        self.gpus = devices if kind == "gpu" else []
        self.tpu_chips = devices if kind == "tpu" else []
        self._ctx = multiprocessing.get_context("spawn")

    def _start(self, index: int) -> tuple[Any, Any]:
        inbox = self._ctx.Queue()
        proc = self._ctx.Process(
            target=_pool_worker,
            args=(index, worker_env(index, self.gpus, self.tpu_chips), inbox, self._outbox),
            name=f"sweep-worker-{index}",
            daemon=True,
        )
        proc.start()
        return proc, inbox

    def run(self, tasks: Sequence[GroupTask], progress: Any) -> Iterator[tuple[GroupTask, Any]]:
        self._outbox = self._ctx.Queue()
        todo = list(tasks)
        attempts: dict[str, int] = {}
        workers = {i: self._start(i) for i in range(min(self.parallelism, len(todo)))}
        assigned: dict[int, GroupTask] = {}
        try:
            while todo or assigned:
                for index, (_, inbox) in workers.items():
                    if index not in assigned and todo:
                        task = todo.pop(0)
                        assigned[index] = task
                        progress.started(task)
                        inbox.put(task)
                try:
                    index, gid, kind, payload = self._outbox.get(timeout=self.poll_s)
                except queue.Empty:
                    index = gid = None
                # A late message from a worker already declared lost (it died right after
                # sending) names a group that was handed out again: ignore it, the retry skips.
                task = assigned.get(index) if index is not None else None
                if task is not None and task.group_id == gid:
                    del assigned[index]
                    if kind == "ok":
                        progress.finished(task, payload)
                        yield task, payload
                    else:
                        yield from self._retry(task, attempts, todo, progress, payload)
                for index, (proc, _) in list(workers.items()):
                    if not proc.is_alive():
                        reason = f"worker {index} exited with code {proc.exitcode}"
                        workers[index] = self._start(index)
                        if index in assigned:
                            yield from self._retry(
                                assigned.pop(index), attempts, todo, progress, reason
                            )
        finally:
            for _proc, inbox in workers.values():
                with contextlib.suppress(Exception):
                    inbox.put(None)
            for proc, _ in workers.values():
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.kill()

    def _retry(
        self,
        task: GroupTask,
        attempts: dict[str, int],
        todo: list[GroupTask],
        progress: Any,
        reason: str,
    ) -> Iterator[tuple[GroupTask, Any]]:
        attempts[task.group_id] = attempts.get(task.group_id, 0) + 1
        progress.lost(task, attempts[task.group_id], reason)
        if attempts[task.group_id] <= self.max_retries:
            todo.append(task)
            return
        write_group_failure(task, f"worker lost {attempts[task.group_id]} times: {reason}")
        outcome = GroupOutcome(task.group_id, "failed", ("failed",) * len(task.trials))
        progress.finished(task, outcome)
        yield task, outcome


# --- Ray ------------------------------------------------------------------------------------


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Fails fast when a `host:port` Ray address does not answer.

    Raises:
      ValueError: the address is malformed or nothing listens there.
    """
    if address == "auto":
        return  # Ray looks the cluster up itself and raises ConnectionError when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address={address!r}; expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ValueError(
            f"--ray-address={address!r} does not answer ({e}); start a cluster with "
            "`ray start --head` and pass the address it prints"
        ) from e


def _ray_execute_group(task: GroupTask) -> GroupOutcome:
    """A Ray task: the group, with the persistent compilation cache on in the Ray worker."""
    with contextlib.suppress(ImportError):
        # Here, in the worker, after its environment is set and before it trains.
        from elm_jax.runtime import enable_compilation_cache

        enable_compilation_cache()
    return execute_group(task)


class RayBackend:
    """Each group is a Ray task asking for `task_options` (default: one GPU when the cluster has
    GPUs, else one CPU); as many groups run at once as the cluster's nodes hold such tasks.

    Results are written by the task itself into the shared sweep directory, so the directory
    must be on a filesystem every node sees (NFS, a cluster disk); resume works as locally.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cpus_per_task: float | None = None,
        gpus_per_task: float | None = None,
        resources: dict[str, float] | None = None,
        max_in_flight: int | None = None,
        max_retries: int = 2,
    ):
        # Here: only the Ray backend needs its option parser.
        from sweeps import ray_options

        options = ray_options.task_options(cpus_per_task, gpus_per_task, resources)
        try:
            # An optional extra, needed only by this backend.
            import ray
        except ImportError as e:
            raise ValueError("--backend=ray needs Ray: pip install -e '.[ray]'") from e
        self.ray = ray
        if address is not None:
            check_ray_address(address)
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                try:
                    ray.init(address=address, log_to_driver=False)
                except ConnectionError as e:
                    raise ValueError(f"--ray-address={address!r}: {e}") from e
        if "num_gpus" not in options and ray.cluster_resources().get("GPU", 0) > 0:
            options["num_gpus"] = 1.0
        self.task_options = options
        asked = ray_options.request(options)
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        fit = ray_options.tasks_that_fit(asked, nodes)
        if asked and fit == 0:
            message = (
                f"no node of the Ray cluster can run a task asking for {asked} "
                f"(--ray-num-cpus/--ray-num-gpus/--ray-resources); nodes have {nodes}"
            )
            if address is None:  # a local Ray never grows: the tasks would wait forever
                raise ValueError(message)
            log.warning("%s; tasks wait until such a node joins", message)
        self.parallelism = max_in_flight or max(1, fit or len(nodes))
        self.max_retries = max_retries
        self._remote = ray.remote(max_retries=0, **options)(_ray_execute_group)

    def run(self, tasks: Sequence[GroupTask], progress: Any) -> Iterator[tuple[GroupTask, Any]]:
        ray = self.ray
        todo = list(tasks)
        attempts: dict[str, int] = {}
        in_flight: dict[Any, GroupTask] = {}
        while todo or in_flight:
            while todo and len(in_flight) < self.parallelism:
                task = todo.pop(0)
                in_flight[self._remote.remote(task)] = task
                progress.started(task)
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            task = in_flight.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except (ray.exceptions.RayError, OSError) as e:
                # Worker or node lost (or an error outside the trainer): hand the group out again.
                attempts[task.group_id] = attempts.get(task.group_id, 0) + 1
                progress.lost(task, attempts[task.group_id], f"{type(e).__name__}: {e}")
                if attempts[task.group_id] <= self.max_retries:
                    todo.append(task)
                    continue
                write_group_failure(task, f"Ray task failed {attempts[task.group_id]} times: {e}")
                outcome = GroupOutcome(task.group_id, "failed", ("failed",) * len(task.trials))
            progress.finished(task, outcome)
            yield task, outcome


# --- SLURM (submitit) -----------------------------------------------------------------------


class GroupJob:
    """One trial group as a submitit job: `__call__` trains it, `checkpoint` resubmits it.

    On preemption or time-out submitit calls `checkpoint()` and requeues what it returns: the
    same group, which resumes from the trainer's Orbax checkpoints in its workdir (and skips
    itself if its records were written meanwhile). This is submitit's `Checkpointable` contract,
    written out so that this module imports without submitit.
    """

    def __init__(self, task: GroupTask):
        self.task = task

    def __call__(self) -> GroupOutcome:
        if not log.handlers:  # a fresh job process: the engine's messages go to the job's log
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
        with contextlib.suppress(ImportError):
            # Here, in the worker, after its environment is set and before it trains.
            from elm_jax.runtime import enable_compilation_cache

            enable_compilation_cache()
        return execute_group(self.task)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        # An optional extra, needed only by this backend.
        import submitit

        return submitit.helpers.DelayedSubmission(GroupJob(self.task))


SLURM_CLUSTERS = ("slurm", "local")


class SlurmBackend:
    """`--backend slurm`: the groups as one SLURM job array (one group per array task).

    Each array task trains its group with `execute_group` and writes the records into the
    sweep directory, so that directory must be on a filesystem every node sees, with `flock`
    working across nodes (the group locks). `cluster="local"` runs the same jobs as local
    processes through submitit's LocalExecutor (tests, a workstation without SLURM).
    """

    def __init__(
        self,
        folder: str,
        *,
        partition: str | None = None,
        gpus_per_task: int = 1,
        cpus_per_task: int = 4,
        time_min: int = 240,
        mem_gb: float | None = None,
        max_in_flight: int | None = None,
        max_retries: int = 2,
        cluster: str = "slurm",
        job_name: str = "sweep",
        poll_s: float | None = None,
    ):
        try:
            # An optional extra, needed only by this backend.
            import submitit
        except ImportError as e:
            raise ValueError("--backend=slurm needs submitit: pip install -e '.[slurm]'") from e
        if cluster not in SLURM_CLUSTERS:
            raise ValueError(f"--slurm-cluster={cluster!r}; valid: {', '.join(SLURM_CLUSTERS)}")
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError(
                "--backend=slurm: no sbatch on PATH; run from a SLURM login node "
                "(or --slurm-cluster=local to run the jobs on this machine)"
            )
        for flag, value, low in (
            ("--slurm-gpus-per-task", gpus_per_task, 0),
            ("--slurm-cpus-per-task", cpus_per_task, 1),
            ("--slurm-time-min", time_min, 1),
        ):
            if value < low:
                raise ValueError(f"{flag}={value}; must be >= {low}")
        self.parallelism = max_in_flight or 1
        self.max_retries = max_retries
        # sacct is asked at most every poll_s on a cluster; local jobs are cheap to poll.
        self.poll_s = poll_s if poll_s is not None else (1.0 if cluster == "local" else 15.0)
        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params: dict[str, Any] = {
            "name": job_name,
            "timeout_min": int(time_min),
            "gpus_per_node": int(gpus_per_task),
            "cpus_per_task": int(cpus_per_task),
            "tasks_per_node": 1,
            "nodes": 1,
        }
        if mem_gb is not None:
            params["mem_gb"] = mem_gb
        if partition:
            params["slurm_partition"] = partition
        if max_in_flight:
            params["slurm_array_parallelism"] = int(max_in_flight)
        self.executor.update_parameters(**params)

    def _submit(self, tasks: Sequence[GroupTask]) -> list[Any]:
        with self.executor.batch():
            jobs = [self.executor.submit(GroupJob(task)) for task in tasks]
        log.info("submitted %d groups as jobs %s", len(jobs), ", ".join(j.job_id for j in jobs))
        return jobs

    def run(self, tasks: Sequence[GroupTask], progress: Any) -> Iterator[tuple[GroupTask, Any]]:
        todo = list(tasks)
        attempts: dict[str, int] = {}
        in_flight: list[tuple[Any, GroupTask]] = []
        while todo or in_flight:
            if todo:
                for job, task in zip(self._submit(todo), todo, strict=True):
                    in_flight.append((job, task))
                    progress.started(task)
                todo = []
            done = [(job, task) for job, task in in_flight if job.done()]
            if not done:
                time.sleep(self.poll_s)
                continue
            for job, task in done:
                in_flight.remove((job, task))
                try:
                    outcome = job.result()
                except Exception as e:
                    # The job died (killed, node lost, out of memory): submit the group again.
                    attempts[task.group_id] = attempts.get(task.group_id, 0) + 1
                    reason = f"job {job.job_id}: {type(e).__name__}: {str(e).splitlines()[0]}"
                    progress.lost(task, attempts[task.group_id], reason)
                    if attempts[task.group_id] <= self.max_retries:
                        todo.append(task)
                        continue
                    write_group_failure(
                        task, f"SLURM job failed {attempts[task.group_id]} times: {reason}"
                    )
                    outcome = GroupOutcome(task.group_id, "failed", ("failed",) * len(task.trials))
                progress.finished(task, outcome)
                yield task, outcome
