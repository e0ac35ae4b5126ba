"""A two-node Ray cluster on the loopback for tests: `ray start` twice on one machine.

Every address is 127.0.0.1. Ray replaces a loopback node address by the machine's outward IP
unless told otherwise: the head, and drivers, run with `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`
(Ray then uses the loopback IP throughout); the second node is the same `ray start` command with
the loopback head address kept as given (`NODE_START`), since Ray refuses to start a worker node
in that mode. Each node gets its own free ports, a 100 MB object store and one CPU; the second
node also carries the custom resource `node2`. All processes of the cluster share a temporary
`--temp-dir`, which is how `stop()` finds them: it kills exactly those processes (and their
children) by pid; `ray stop --force` is not used, as it kills every Ray process of the machine,
other clusters' included. The cluster has its own token (Ray's token authentication), so it
does not depend on the user's `~/.ray/auth_token`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile

import psutil

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 180
START_ATTEMPTS = 3
AGENT_TIMEOUT_MS = 120_000
# `ray start` with the head address kept as given (Ray would swap a loopback one for the IP
# the machine uses to reach the internet).
NODE_START = (
    "import sys; from ray._private import services; "
    "services.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """`with LoopbackCluster(cwd) as cluster:` starts the head and a second node; stops both."""

    def __init__(self, cwd: str):
        self.cwd = cwd
        self.temp_dir = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self._token = secrets.token_hex(32)

    def env(self, loopback: bool = True) -> dict[str, str]:
        """The environment of this cluster's processes and drivers: no usage reports, the
        cluster's own auth token (not the user's ~/.ray one), Ray on the loopback (`loopback`;
        False only for the second node's `ray start`, see the module docstring)."""
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        # A raylet waits this long for its node's agents, which start slowly on a loaded machine.
        env["RAY_agent_register_timeout_ms"] = str(AGENT_TIMEOUT_MS)
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self._token)
        env.pop("RAY_AUTH_TOKEN_PATH", None)
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0" if loopback else "1"
        return env

    def __enter__(self) -> LoopbackCluster:
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_head()
                self._start_node()
                return self
            except RuntimeError as err:
                # On a loaded machine a raylet can miss Ray's fixed 30 s registration window.
                self._kill_all()
                if attempt == START_ATTEMPTS:
                    self.stop()
                    raise
                print(f"ray start attempt {attempt} failed, retrying: {str(err)[:300]}")
                self.port = free_port()
                self.address = f"{LOOPBACK}:{self.port}"
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _common_flags(self) -> list[str]:
        return [
            "--num-cpus=1",
            "--object-store-memory=100000000",
            f"--temp-dir={self.temp_dir}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
        ]

    def _run(self, cmd: list[str], env: dict[str, str]) -> None:
        out = subprocess.run(
            cmd, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} failed ({out.returncode}):\n{out.stderr}")

    def _start_head(self) -> None:
        ray = os.path.join(os.path.dirname(sys.executable), "ray")
        cmd = [ray, "start", "--head", f"--node-ip-address={LOOPBACK}", f"--port={self.port}"]
        cmd += ["--include-dashboard=false", f"--dashboard-port={free_port()}"]
        cmd += [f"--ray-client-server-port={free_port()}", *self._common_flags()]
        self._run(cmd, self.env())

    def _start_node(self) -> None:
        cmd = [sys.executable, "-c", NODE_START, "start", f"--address={self.address}"]
        cmd += [f"--resources={json.dumps({'node2': 1})}", *self._common_flags()]
        self._run(cmd, self.env(loopback=False))

    def processes(self) -> list[psutil.Process]:
        """Every live process of this cluster: those naming its temp dir, and their children."""
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid == os.getpid():
                continue
            if self.temp_dir in " ".join(proc.info["cmdline"] or []):
                found[proc.pid] = proc
                with contextlib.suppress(psutil.Error):
                    found.update({c.pid: c for c in proc.children(recursive=True)})
        return list(found.values())

    def raylet(self, node: str) -> psutil.Process:
        """The raylet of `node`: "head" or "node2" (the one with the `node2` resource)."""
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                cmdline = " ".join(proc.cmdline())
                if proc.name() == "raylet" and ("node2," in cmdline) == (node == "node2"):
                    return proc
        raise LookupError(f"no raylet of node {node} in {self.temp_dir}")

    def busy_workers(self, node: str, function: str) -> list[psutil.Process]:
        """Worker processes of `node` executing the Ray task `function` (by process title)."""
        busy = []
        with contextlib.suppress(psutil.Error):
            for proc in self.raylet(node).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if " ".join(proc.cmdline()).startswith(f"ray::{function}"):
                        busy.append(proc)
        return busy

    def _kill_all(self) -> None:
        """Kills every process of this cluster by pid (twice: a dying raylet may respawn)."""
        for _ in range(2):
            procs = self.processes()
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(procs, timeout=20)

    def stop(self) -> None:
        """Kills the cluster's processes and removes its temp dir."""
        self._kill_all()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
