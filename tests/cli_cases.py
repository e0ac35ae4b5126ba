"""Bad inputs at every command line, their exit codes, and the docs/cli.md table built from them.

Each `Case` is run as `python -m MODULE ARGS` from the repository root, with `{tmp}` standing for
a folder of prepared bad inputs (`make_inputs`). tests/test_cli.py asserts the exit code, a single
stderr line holding every `expect` string, and no traceback; it also checks that the table in
docs/cli.md is the one these runs produce. After changing a message, rewrite the table with

    .venv/bin/python tests/cli_cases.py --write docs/cli.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- cli-cases:begin -->", "<!-- cli-cases:end -->"
SMOKE = "--config=elm_jax/configs/smoke.py"
SHD = "--config=elm_jax/configs/shd_adding.py"


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad command line: `module` run with `args`, the exit code and message fragments."""

    module: str
    args: str
    code: int
    expect: tuple[str, ...]

    def argv(self, tmp: str) -> list[str]:
        return shlex.split(self.args.replace("{tmp}", tmp))


@dataclasses.dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


CASES = (
    Case("elm_jax.main", f"{SMOKE}:N=0 --workdir={{tmp}}/w", 2, ("num_neurons=0", ">= 1")),
    Case("elm_jax.main", f"{SMOKE}:N64 --workdir={{tmp}}/w", 2, ("'N64'", "key=value")),
    Case("elm_jax.main", f"{SMOKE}:batch=0 --workdir={{tmp}}/w", 2, ("batch_size=0", ">= 1")),
    Case("elm_jax.main", f"{SMOKE}:steps=2.5 --workdir={{tmp}}/w", 2, ("steps=2.5", "integer")),
    Case("elm_jax.main", f"{SMOKE}:lr=fast --workdir={{tmp}}/w", 2, ("lr=fast", "number")),
    Case("elm_jax.main", f"{SMOKE}:width=3 --workdir={{tmp}}/w", 2, ("'width'", "short names")),
    Case(
        "elm_jax.main",
        f"{SMOKE} --config.optim.name=rmsprop --workdir={{tmp}}/w",
        2,
        ("rmsprop", "adamax"),
    ),
    Case(
        "elm_jax.main",
        f"{SMOKE} --config.num_train_steps=abc --workdir={{tmp}}/w",
        2,
        ("num_train_steps=abc", "int"),
    ),
    Case("elm_jax.main", f"{SMOKE} --config.shuffle=1 --workdir={{tmp}}/w", 2, ("shuffle",)),
    Case("elm_jax.main", f"{SMOKE} --config.data.name=mnist --check", 2, ("'mnist'", "shd")),
    Case("elm_jax.main", f"{SHD}:bin_ms=3 --check", 2, ("bin_ms=3", "divisor")),
    Case("elm_jax.main", SMOKE, 2, ("--workdir",)),
    Case(
        "elm_jax.main",
        "--config=elm_jax/configs/nope.py --workdir={tmp}/w",
        2,
        ("nope.py", "get_config"),
    ),
    Case(
        "elm_jax.main",
        f"{SHD}:data.name=shd --config.model.num_classes=20 --config.data.data_dir={{tmp}}/none"
        " --workdir={tmp}/w",
        4,
        ("{tmp}/none", "shd_train.h5"),
    ),
    Case(
        "elm_jax.main",
        f"{SHD}:data.name=shd --config.model.num_classes=20 --config.data.data_dir={{tmp}}/shd"
        " --workdir={tmp}/w",
        4,
        ("{tmp}/shd/shd_train.h5", "corrupt"),
    ),
    Case("elm_jax.main", f"{SMOKE} --workdir={{tmp}}/file", 2, ("--workdir={tmp}/file", "file")),
    Case(
        "elm_jax.main",
        f"{SMOKE}:N=0,lr=-1 --check",
        2,
        ("num_neurons=0", "learning_rate=-1.0"),
    ),
    Case(
        "elm_jax.main",
        "--config={tmp}/broken_config.py --check",
        2,
        ("{tmp}/broken_config.py line 1", "syntax"),
    ),
    Case(
        "sweeps.run",
        "--sweep sweeps/configs/shd_adding.py:steps=2.5 --dir {tmp}/s",
        2,
        ("steps=2.5", "integer"),
    ),
    Case(
        "sweeps.run",
        "--sweep sweeps/configs/shd_adding.py:steps=abc --dir {tmp}/s",
        2,
        ("steps=abc", "integer"),
    ),
    Case("sweeps.run", "--sweep tiny:width=3 --dir {tmp}/s", 2, ("'width'", "valid: steps")),
    Case("sweeps.run", "--sweep tiny:budgets=1 --dir {tmp}/s", 2, ("budget=1", ">= 21")),
    Case("sweeps.run", "--sweep nope --dir {tmp}/s", 2, ("nope", "default, enwik8")),
    Case("sweeps.run", "--sweep tiny --dir {tmp}/s --workers 0", 2, ("--workers=0", ">= 1")),
    Case("sweeps.run", "--sweep tiny", 2, ("--dir",)),
    Case("sweeps.run", "--sweep tiny --dir {tmp}/file/s", 2, ("{tmp}/file/s", "writable")),
    Case("sweeps.run", "--sweep tiny --dir {tmp}/s --ray-address x", 2, ("--ray-address",)),
    Case("sweeps.run", "--sweep tiny:seeds=[0,0] --dir {tmp}/s", 2, ("config.seeds=[0, 0]",)),
    Case(
        "sweeps.run",
        "--sweep law:fixed_seeds=[1,1] --dir {tmp}/s --check",
        2,
        ("fixed_seeds=(1, 1)", "distinct"),
    ),
    Case("sweeps.run", "--sweep tiny --dir {tmp}/s --max-retries -1", 2, ("--max-retries=-1",)),
    Case(
        "sweeps.run",
        "--sweep tiny --dir {tmp}/s --train-fn nomodule:train",
        2,
        ("--train-fn=nomodule:train", "cannot import"),
    ),
    Case(
        "sweeps.run",
        "--sweep {tmp}/broken_config.py --dir {tmp}/s",
        2,
        ("{tmp}/broken_config.py line 1", "syntax"),
    ),
    Case("sweeps.run", "--sweep tiny --dir {tmp}/s --shard 4/4", 2, ("--shard=4/4", "0..3")),
    Case("sweeps.run", "--sweep tiny --dir {tmp}/s --shard 1", 2, ("--shard=1", "I/K")),
    Case("sweeps.run", "--sweep tiny --dir {tmp}/s --workers all", 2, ("'all'", "'auto'")),
    Case(
        "sweeps.merge",
        "{tmp}/m {tmp}/shard_a {tmp}/shard_a",
        2,
        ("trial t1", "in both {tmp}/shard_a and {tmp}/shard_a"),
    ),
    Case(
        "sweeps.merge",
        "{tmp}/m {tmp}/shard_a {tmp}/other_sweep",
        2,
        ("{tmp}/other_sweep holds a different sweep than {tmp}/shard_a", "'tiny' -> 'default'"),
    ),
    Case("sweeps.merge", "{tmp}/m {tmp}/file", 2, ("{tmp}/file", "not a directory")),
    Case("sweeps.merge", "{tmp}/file {tmp}/shard_a", 2, ("OUT={tmp}/file", "not an empty")),
    Case(
        "elm_jax.budget",
        "points --budget -1 --task shd_adding",
        2,
        ("budget=-1", "> 0"),
    ),
    Case(
        "elm_jax.budget",
        "points --budget lots --task shd_adding",
        2,
        ("--budget", "'lots'"),
    ),
    Case(
        "elm_jax.budget",
        "points --budget 1e4 --task shd_adding --d-m 1,x",
        2,
        ("--d-m", "'1,x'", "integers"),
    ),
    Case("elm_jax.budget", "points --budget 1e4 --task mnist", 2, ("'mnist'", "shd_adding")),
    Case("elm_jax.budget", "points --budget 1 --task shd_adding", 2, ("budget=1", ">= 21")),
    Case(
        "elm_jax.budget",
        "points --budget 1e4 --task shd_adding --k-c 3",
        2,
        ("k_c=3", "multiple of d_tree=4"),
    ),
    Case("analysis.report", "{tmp}/corrupt", 2, ("{tmp}/corrupt/results.parquet", "parquet")),
    Case("analysis.report", "{tmp}/half", 2, ("{tmp}/half/trials/t1.json", "JSON")),
    Case("analysis.report", "{tmp}/file", 2, ("{tmp}/file", "results.parquet")),
    Case("analysis.report", "{tmp}/half --n-boot -1", 2, ("--n-boot", "'-1'", ">= 0")),
    Case("analysis.report", "{tmp}/half --out {tmp}/file/r", 2, ("--out={tmp}/file/r", "writable")),
    Case(
        "elm_jax.neuron.convert",
        "{tmp}/m.pt {tmp}/o.npz --config {tmp}/bad.json",
        2,
        ("{tmp}/bad.json", "JSON"),
    ),
    Case(
        "elm_jax.neuron.convert",
        "{tmp}/m.pt {tmp}/o.npz --config {tmp}/unknown.json",
        2,
        ("{tmp}/unknown.json", "'colour'", "valid keys"),
    ),
    Case("elm_jax.neuron.convert", "{tmp}/none.pt {tmp}/o.npz", 2, ("{tmp}/none.pt", ".pt")),
    Case("elm_jax.neuron.convert", "{tmp}/m.pt {tmp}/o.npz --version v3", 2, ("'v3'", "'v1'")),
    Case(
        "elm_jax.neuron.convert",
        "{tmp}/m.pt {tmp}/o.npz",
        2,
        ("{tmp}/model_config.json", "--config"),
    ),
    Case(
        "elm_jax.neuron.convert",
        "{tmp}/m.pt {tmp}/file/o.npz --config {tmp}/good.json",
        2,
        ("{tmp}/file/o.npz", "writable"),
    ),
    Case(
        "elm_jax.neuron.convert",
        "{tmp}/m.pt {tmp}/o.npz --config {tmp}/good.json",
        3,
        ("torch", "pip install"),
    ),
    Case("elm_jax.data.audio_to_shd", "{tmp}/none {tmp}/o.h5", 2, ("{tmp}/none", "directory")),
    Case("elm_jax.data.audio_to_shd", "{tmp}/wav_empty {tmp}/o.h5", 2, ("{tmp}/wav_empty", ".wav")),
    Case(
        "elm_jax.data.audio_to_shd",
        "{tmp}/wav_bad {tmp}/o.h5",
        2,
        ("{tmp}/wav_bad/1_alice_0.wav", "WAV"),
    ),
    Case(
        "elm_jax.data.audio_to_shd",
        "{tmp}/wav_name {tmp}/o.h5",
        2,
        ("'hello.wav'", "{digit}_{speaker}_{index}.wav"),
    ),
    Case(
        "elm_jax.data.audio_to_shd",
        "{tmp}/wav_bad {tmp}/o.h5 --workers 0",
        2,
        ("--workers", ">= 1"),
    ),
    Case("elm_jax.data.prepare", "--workers -1", 2, ("--workers", "-1", ">= 1")),
    Case("elm_jax.data.prepare", "--only mnist", 2, ("'mnist'", "'shd'")),
    Case("elm_jax.data.prepare", "--data-dir {tmp}/file/d", 2, ("{tmp}/file/d", "writable")),
)


def make_inputs(tmp: Path) -> None:
    """The bad files the cases read (and a fake `torch` that fails to import)."""
    (tmp / "file").write_text("a file, not a directory\n")
    (tmp / "broken_config.py").write_text("def get_config(:\n")
    (tmp / "corrupt").mkdir()
    (tmp / "corrupt" / "results.parquet").write_bytes(b"not parquet")
    (tmp / "half" / "trials").mkdir(parents=True)
    (tmp / "half" / "trials" / "t1.json").write_text('{"trial_id": "t1", "status": ')
    (tmp / "shd").mkdir()
    for name in ("shd_train.h5", "shd_test.h5"):
        (tmp / "shd" / name).write_bytes(b"truncated")
    (tmp / "m.pt").write_bytes(b"not a checkpoint")
    (tmp / "bad.json").write_text('{"num_input": 8,')
    (tmp / "unknown.json").write_text('{"num_input": 8, "colour": "red"}')
    (tmp / "good.json").write_text('{"num_input": 8, "num_output": 2, "num_memory": 3}')
    (tmp / "wav_empty").mkdir()
    (tmp / "wav_bad").mkdir()
    (tmp / "wav_bad" / "1_alice_0.wav").write_bytes(b"RIFF")
    (tmp / "wav_name").mkdir()
    (tmp / "wav_name" / "hello.wav").write_bytes(b"")
    for name, sweep in (("shard_a", "tiny"), ("other_sweep", "default")):
        (tmp / name / "trials").mkdir(parents=True)
        trial = {"describe": "budget 200 elm N=9 d_m=1 k_c=4", "seed": 0}
        manifest = {
            "sweep": sweep,
            "task": "shd_adding",
            "train_config": {},
            "trials": {"t1": trial},
        }
        (tmp / name / "manifest.json").write_text(json.dumps(manifest))
        (tmp / name / "trials" / "t1.json").write_text("{}")
    (tmp / "hidden").mkdir()
    (tmp / "hidden" / "torch.py").write_text('raise ImportError("torch is hidden here")\n')


def run_case(case: Case, tmp: str, timeout: float = 300) -> Result:
    """Runs one case from the repository root (torch hidden, so the result does not depend on it)."""
    env = dict(os.environ)
    env.pop("ELM_DEBUG", None)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(tmp, "hidden"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", case.module, *case.argv(tmp)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_all(tmp: str, workers: int = os.cpu_count() or 2) -> dict[Case, Result]:
    """Every case's result (a few processes at a time)."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(zip(CASES, pool.map(lambda c: run_case(c, tmp), CASES), strict=True))


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def render_table(results: dict[Case, Result], tmp: str) -> str:
    """The markdown table of docs/cli.md (temporary paths shown as TMP)."""

    def clean(text: str) -> str:
        return text.replace(tmp, "TMP").replace(str(REPO) + os.sep, "")

    rows = ["| Command | Exit | Message on stderr |", "|---|---|---|"]
    for case, result in results.items():
        message = " / ".join(stderr_lines(result))
        command = clean(f"python -m {case.module} {case.args.replace('{tmp}', tmp)}")
        rows.append(f"| {_cell(command)} | {result.code} | {_cell(clean(message))} |")
    return "\n".join(rows)


def doc_table(path: Path) -> str:
    """The generated block of a docs page (between the cli-cases markers)."""
    text = path.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    if match is None:
        raise ValueError(f"{path} has no {BEGIN} ... {END} block")
    return match.group(1)


def write_table(path: Path, table: str) -> None:
    text = path.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the bad-input cases; print or write docs.")
    parser.add_argument("--write", type=Path, help="docs page whose cli-cases block to rewrite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_inputs(Path(tmp))
        table = render_table(run_all(tmp), tmp)
    if args.write:
        write_table(args.write, table)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
