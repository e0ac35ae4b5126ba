"""Every command line that README.md, docs/*.md and the module docstrings show works as written.

The commands are read from the files (tests/doc_commands.py), so a new example is covered as
soon as it is written. What "works" means per entry point, without training anything:

* elm_jax.main: the command with `--check` appended exits 0 (config, model, optimizer, data
  name and options all valid);
* sweeps.run and `make sweep SWEEP=...`: `sweeps.run --check` on that sweep exits 0 (every
  point's config valid) and creates no directory;
* elm_jax.budget: runs exactly as written and prints its table;
* the other entry points: their argument parser accepts the arguments as written;
* a synopsis (`[--workers K]`, `DIR`, ...) names an existing module, and every flag it names is
  one that module defines.

A batch-job recipe's `$VARIABLES` (the host's shard: `$SLURM_ARRAY_TASK_ID`, ...) are replaced by
the example values of tests/doc_commands.EXAMPLE_ENV first, so its `sweeps.run --shard ...` line
is checked as above and `--check` must print that shard's assignment.

docs/cli.md lists bad inputs on purpose; tests/test_cli.py checks those.
"""

from __future__ import annotations

import argparse
import ast
import glob
import importlib
import importlib.util
import os
import re
import subprocess
import sys

import doc_commands
import pytest

from elm_jax.configs.common import base_config
from elm_jax.configs.variant import parse_variant

REPO = doc_commands.REPO
COMMANDS = [c for c in doc_commands.all_commands() if c.source != "docs/cli.md"]
RUNNABLE = [c for c in COMMANDS if not c.is_synopsis()]
SYNOPSES = [c for c in COMMANDS if c.is_synopsis()]


class _Parsed(SystemExit):
    """Raised by the patched parse_args once the arguments parsed (a SystemExit, so that the
    command lines' error handling lets it through)."""


def _makefile_default_sweep() -> str:
    text = (REPO / "Makefile").read_text()
    return re.search(r"^SWEEP \?= (\S+)", text, re.M).group(1)


def _sweep_args(command: doc_commands.DocCommand, tmp_path) -> list[str]:
    """sweeps.run arguments that check the sweep a command names, into a fresh directory."""
    if command.module == "make":
        settings = dict(a.split("=", 1) for a in command.args[1:] if "=" in a)
        return ["--sweep", settings.get("SWEEP", _makefile_default_sweep())]
    args = list(command.args)
    i = args.index("--dir")
    del args[i : i + 2]
    return args


def _ids(commands):
    return [f"{c.source}:{(c.shown or c.text)[:70]}" for c in commands]


def test_the_docs_show_commands_of_every_kind():
    modules = {c.module for c in RUNNABLE}
    assert {"make", "elm_jax.main", "sweeps.run", "elm_jax.budget", "analysis.report"} <= modules
    assert any(c.source == "README.md" for c in RUNNABLE)
    assert any(c.source.endswith(".py") for c in RUNNABLE)


def test_every_multi_host_recipe_is_checked_with_example_values_for_its_variables():
    recipes = [c for c in RUNNABLE if c.shown and c.module == "sweeps.run"]
    for variable in ("$SLURM_ARRAY_TASK_ID", "$JOB_COMPLETION_INDEX", "$TPU_WORKER"):
        assert any(variable in c.shown and "--shard" in c.args for c in recipes), variable


@pytest.mark.parametrize("command", RUNNABLE, ids=_ids(RUNNABLE))
def test_documented_command_works_as_written(command, tmp_path, monkeypatch, capsys):
    if command.module == "elm_jax.main":
        proc = subprocess.run(
            [sys.executable, "-m", "elm_jax.main", *command.args, "--check"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert '"model"' in proc.stdout
        return
    monkeypatch.chdir(REPO)
    if command.module in ("make", "sweeps.run"):
        from sweeps import run

        sweep_dir = tmp_path / "sweep"
        assert run.main([*_sweep_args(command, tmp_path), "--dir", str(sweep_dir), "--check"]) == 0
        out = capsys.readouterr().out
        assert " points x " in out and not sweep_dir.exists()
        if "--shard" in command.args:
            assert f"\nshard {command.args[command.args.index('--shard') + 1]}: " in out
        return
    if command.module == "elm_jax.budget":
        from elm_jax.budget import cli as budget_cli

        assert budget_cli.main(command.args) == 0
        assert "P_core" in capsys.readouterr().out
        return
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    module = importlib.import_module(_entry_module(command.module))
    with pytest.raises(_Parsed) as parsed:
        module.main(command.args)
    assert isinstance(parsed.value.code, argparse.Namespace)


def _entry_module(name: str) -> str:
    """The module whose `main` `python -m name` runs: `name` itself, or for a package the module
    its `__main__.py` imports `main` from."""
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"no module {name}"
    if spec.submodule_search_locations is None:
        return name
    main_path = os.path.join(spec.submodule_search_locations[0], "__main__.py")
    assert os.path.exists(main_path), f"package {name} has no __main__.py: python -m {name} fails"
    tree = ast.parse(open(main_path, encoding="utf-8").read())
    sources = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and any(a.name == "main" for a in node.names)
    ]
    assert len(sources) == 1, f"{main_path} must import main from exactly one module"
    return sources[0]


@pytest.mark.parametrize("command", SYNOPSES, ids=_ids(SYNOPSES))
def test_documented_synopsis_names_real_flags(command):
    spec = importlib.util.find_spec(command.module)
    assert spec is not None and spec.origin, f"{command.source}: no module {command.module}"
    # A package (python -m elm_jax.budget) parses its flags in one of its modules.
    paths = [spec.origin]
    if spec.submodule_search_locations:
        paths = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "*.py")))
    source = "".join(open(path).read() for path in paths)
    flags = {w.strip("[]").split("=")[0] for w in command.args if w.strip("[").startswith("--")}
    for flag in flags:
        name = flag[2:]
        if name.startswith("config."):  # an override of a field of the --config file's config
            assert "DEFINE_config_file" in source, f"{command.source}: {flag} needs --config"
            node = base_config()
            for part in name.split(".")[1:]:
                assert part in node, f"{command.source}: {flag} names no config field"
                node = node[part]
            continue
        names = (f'"--{name}"', f'"{name}"', f'"{name.replace("-", "_")}"')
        assert any(n in source for n in names), f"{command.source}: {flag} is not a flag"


@pytest.mark.parametrize(
    "source,path,variant", doc_commands.config_variants(), ids=lambda v: str(v)[-40:]
)
def test_documented_variant_string_parses(source, path, variant):
    spec = importlib.util.spec_from_file_location("doc_variant_config", path)
    assert spec is not None and spec.loader is not None, f"{source}: no config {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(variant)
    assert config.to_dict() != module.get_config(None).to_dict(), (
        f"{source}: {variant} changed nothing"
    )
    if "=" not in variant:
        return  # a named variant of the file (smoke.py:classification)
    for key, (_, value) in parse_variant(variant).items():
        assert _plain(config[key]) == _plain(value), f"{source}: {key} of {variant}"


def _plain(value):
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
