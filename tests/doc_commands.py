"""The command lines that README.md, docs/*.md and the modules' docstrings show, found by reading them.

A command is a line (with its `\\` continuations) in a code block, or inline code, that runs
`python -m MODULE` of this project or `make sweep`. `is_synopsis` tells a usage synopsis
(`[--workers K]`, `DIR`, `IN.pt`, `a|b`, `$VAR`) from a command that runs as written.

A recipe for a batch job reads the host's place in the job from the environment
(`--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`). A command whose variables are all in
`EXAMPLE_ENV` is taken with those example values put in (`DocCommand.shown` keeps the line as
written), so it is checked like any other; a variable not listed there keeps it a synopsis.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("elm_jax", "sweeps", "analysis")
_START = re.compile(r"^(?:\.venv/bin/)?python -m |^make sweep\b")
_INLINE = re.compile(r"`([^`\n]+)`")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(?:\.[a-z0-9]+)?$|<.*>|^\.\.\.$")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")

#: Example values of the environment variables that the multi-host recipes of docs/sweeps.md
#: read (SLURM array task, Kubernetes indexed Job, and the TPU VM worker number and count
#: that the TPU recipe reads from the VM's metadata).
EXAMPLE_ENV = {
    "SLURM_ARRAY_TASK_ID": "2",
    "SLURM_ARRAY_TASK_COUNT": "4",
    "JOB_COMPLETION_INDEX": "1",
    "TPU_WORKER": "3",
    "TPU_HOSTS": "4",
}


def with_example_env(text: str) -> str | None:
    """`text` with the EXAMPLE_ENV values for its `$VAR` / `${VAR}`; None if one is not listed."""
    names = [a or b for a, b in _VARIABLE.findall(text)]
    if not names or any(n not in EXAMPLE_ENV for n in names):
        return None
    return _VARIABLE.sub(lambda m: EXAMPLE_ENV[m.group(1) or m.group(2)], text)


@dataclasses.dataclass(frozen=True)
class DocCommand:
    """One command line and where it is shown."""

    source: str
    text: str
    shown: str = ""  # the line as the doc writes it, when `text` has example values put in

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.text)
        return words[1:] if words[0].endswith("python") else words

    @property
    def module(self) -> str:
        return self.argv[1] if self.argv[0] == "-m" else self.argv[0]

    @property
    def args(self) -> list[str]:
        return self.argv[2:] if self.argv[0] == "-m" else self.argv[1:]

    def is_synopsis(self) -> bool:
        """True for a usage line with placeholders or optional parts, not runnable as written."""
        if "$" in self.text or " [" in self.text or "[:" in self.text or " | " in self.text:
            return True
        values = [w.split("=", 1)[-1] for w in self.args]
        return any(_PLACEHOLDER.search(p) for v in values for p in re.split(r"[/:]", v))


def _joined_lines(text: str) -> list[str]:
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if current:
            current += " " + stripped
        else:
            current = stripped
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        out.append(current)
        current = ""
    return out + ([current] if current else [])


def _is_project_command(text: str) -> bool:
    if not _START.search(text):
        return False
    if text.startswith("make"):
        return True
    module = text.split("python -m ", 1)[1].split()[0]
    return module.split(".")[0] in PACKAGES


def commands_in(text: str, source: str) -> list[DocCommand]:
    """Every project command line in a markdown text or docstring."""
    found = []
    for line in _joined_lines(text):
        candidates = [line] if _START.search(line) else []
        candidates += [m.group(1).strip() for m in _INLINE.finditer(line)]
        for cand in candidates:
            cand = cand.split("  #")[0].strip()
            if _START.search(cand) and _is_project_command(cand) and "`" not in cand:
                example = with_example_env(cand)
                found.append(
                    DocCommand(source, example, cand) if example else DocCommand(source, cand)
                )
    return found


def all_commands() -> list[DocCommand]:
    """The commands of README.md, docs/*.md and every module docstring of the packages."""
    out: list[DocCommand] = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        out += commands_in(path.read_text(), str(path.relative_to(REPO)))
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            out += commands_in(doc, str(path.relative_to(REPO)))
    unique: dict[str, DocCommand] = {}
    for command in out:
        unique.setdefault(command.text, command)
    return list(unique.values())


_VARIANT = re.compile(r"^([\w/]+\.py):(\S+)$")


def config_variants() -> list[tuple[str, str, str]]:
    """(source, config file, variant) for inline `NAME.py:VARIANT` in the config modules' docs.

    A bare NAME.py is the file next to the module that shows it (sweeps/configs/default.py
    showing `default.py:steps=1000` means sweeps/configs/default.py).
    """
    out = []
    for folder in ("elm_jax/configs", "sweeps/configs"):
        for path in sorted((REPO / folder).glob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            for match in _INLINE.finditer(doc):
                found = _VARIANT.match(match.group(1).strip())
                if found is None or found.group(1).isupper() or found.group(1)[0].isupper():
                    continue
                name = found.group(1)
                target = REPO / folder / name if "/" not in name else REPO / name
                out.append((str(path.relative_to(REPO)), str(target), found.group(2)))
    return out


if __name__ == "__main__":
    for c in all_commands():
        shown = f"{c.text}  (as written: {c.shown})" if c.shown else c.text
        print(("SYNOPSIS " if c.is_synopsis() else "RUN      ") + f"{c.source}: {shown}")
    for source, target, variant in config_variants():
        print(f"VARIANT  {source}: {target}:{variant}")
