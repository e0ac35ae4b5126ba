"""Command line: merge the directories of one sweep's shards into one sweep directory.

    python -m sweeps.merge OUT DIR [DIR ...]

Each DIR was written by `python -m sweeps.run ... --shard I/K` (or is any directory of the same
sweep). The directories must record the same sweep definition (manifest.json) and no trial may
have a record in two of them; either is refused before anything is written, naming the
directories (and the trial). OUT is created (it must not exist, or be empty) with the manifest,
every trial record, the trainer workdirs of the groups (groups/<group_id>/: checkpoints,
metrics, TensorBoard runs), the shards' logs and results.parquet rebuilt over all of them. OUT is
then an ordinary sweep directory: sweeps.run with the same sweep resumes it (trains what no
shard finished) and `python -m analysis.report OUT` reports it. A trial that no
directory has finished is listed on stderr; the merge still succeeds. See docs/sweeps.md.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from elm_jax import cli
from sweeps import store as store_lib


class MergeError(ValueError):
    """The directories cannot be merged (not sweep directories, different sweeps, a duplicate)."""


@dataclasses.dataclass(frozen=True)
class MergeResult:
    """What a merge wrote: the table's path, the number of records and the trials missing."""

    results_path: str
    records: int
    missing: tuple[str, ...]  # "describe seed s" of the trials no directory has finished


def read_manifest(directory: str) -> dict:
    """The manifest of a sweep directory.

    Raises:
      MergeError: the directory or its manifest.json does not exist or is not valid JSON.
    """
    st = store_lib.SweepStore(directory)
    if not os.path.isdir(directory):
        what = "not a directory" if os.path.exists(directory) else "no such directory"
        raise MergeError(f"{directory}: {what}; pass sweep directories written by sweeps.run")
    try:
        manifest = st.read_manifest()
    except ValueError as e:
        raise MergeError(f"{st.manifest_path}: not valid JSON ({e})") from e
    if manifest is None:
        raise MergeError(
            f"{directory}: no manifest.json; pass directories written by python -m sweeps.run"
        )
    return manifest


def check_same_sweep(directories: Sequence[str], manifests: Sequence[dict]) -> None:
    """Refuses directories that record different sweep definitions (names the difference)."""
    first_dir, first = directories[0], manifests[0]
    for directory, manifest in zip(directories[1:], manifests[1:], strict=True):
        # A different training config changes every trial id: name that, not every trial.
        changes = store_lib.describe_changes(first, manifest, trials=False)
        changes = changes or store_lib.describe_changes(first, manifest)
        if changes:
            raise MergeError(
                f"{directory} holds a different sweep than {first_dir} (from {first_dir} to "
                f"{directory}: {'; '.join(changes)}); merge only the shard directories of one "
                "sweep, run with the same --sweep and flags"
            )


def find_records(directories: Sequence[str], manifest: dict) -> dict[str, str]:
    """trial id → the directory holding its record.

    Raises:
      MergeError: a trial has a record in two directories, or a record is not of this sweep.
    """
    owner: dict[str, str] = {}
    for directory in directories:
        for trial_id in sorted(store_lib.SweepStore(directory).finished_ids()):
            if trial_id not in manifest["trials"]:
                raise MergeError(
                    f"{directory}: trial record {trial_id} is not a trial of the sweep its "
                    "manifest.json defines; delete it or pass another directory"
                )
            if trial_id in owner:
                info = manifest["trials"][trial_id]
                raise MergeError(
                    f"trial {trial_id} ({info['describe']} seed {info['seed']}) has a record in "
                    f"both {owner[trial_id]} and {directory}; each trial must come from one "
                    "shard: pass each shard's directory once, or delete one of the two records "
                    f"({os.path.join(directory, 'trials', trial_id + '.json')})"
                )
            owner[trial_id] = directory
    return owner


def _copy_groups(directories: Sequence[str], owner: dict[str, str], out: str) -> None:
    """Copies the trainer workdirs: each recorded group from the directory of its records, then
    the unfinished ones (checkpoints to resume from) where no directory's copy is there yet."""
    out_store = store_lib.SweepStore(out)
    wanted: dict[str, str] = {}
    for trial_id, directory in sorted(owner.items()):
        group = store_lib.SweepStore(directory).read_record(trial_id).get("group_id")
        if group:
            wanted.setdefault(group, directory)
    for directory in directories:
        groups_dir = store_lib.SweepStore(directory).groups_dir
        names = sorted(os.listdir(groups_dir)) if os.path.isdir(groups_dir) else []
        for name in names:
            if os.path.isdir(os.path.join(groups_dir, name)):
                wanted.setdefault(name, directory)
    for group, directory in sorted(wanted.items()):
        source = store_lib.SweepStore(directory).group_dir(group)
        if os.path.isdir(source):
            shutil.copytree(source, out_store.group_dir(group), symlinks=True)


def _check_out(out: str, directories: Sequence[str]) -> str:
    path = os.path.abspath(out)
    if path in {os.path.abspath(d) for d in directories}:
        raise MergeError(f"OUT={out} is one of the directories to merge; choose a new directory")
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise MergeError(
            f"OUT={out} exists and is not an empty directory; choose a new directory (a merge "
            "never writes into an existing sweep)"
        )
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise MergeError(f"OUT={out}: cannot create {parent} ({e.strerror})") from e
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MergeError(f"OUT={out}: {parent} is not writable; choose a directory you can write")
    return path


def merge(out: str, directories: Sequence[str]) -> MergeResult:
    """Merges the sweep directories into the new directory `out` (module docstring).

    The merged directory is built next to `out` and renamed into place, so an interrupted merge
    leaves no half-merged `out`.

    Raises:
      MergeError: fewer than one directory, not sweep directories, different sweeps, a trial
        recorded twice, or an `out` that exists and is not empty.
    """
    if not directories:
        raise MergeError("no directories to merge; pass OUT and at least one sweep directory")
    path = _check_out(out, directories)
    manifests = [read_manifest(d) for d in directories]
    check_same_sweep(directories, manifests)
    manifest = manifests[0]
    owner = find_records(directories, manifest)
    build = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.merge-", dir=os.path.dirname(path))
    try:
        st = store_lib.SweepStore(build)
        st.create_dirs()
        store_lib.atomic_write_json(st.manifest_path, manifest)
        for trial_id, directory in sorted(owner.items()):
            with open(store_lib.SweepStore(directory).trial_path(trial_id), encoding="utf-8") as f:
                store_lib.atomic_write_text(st.trial_path(trial_id), f.read())
        _copy_groups(directories, owner, build)
        with open(st.log_path, "w", encoding="utf-8") as log:
            for directory in directories:
                log.write(f"=== {os.path.abspath(directory)}/sweep.log ===\n")
                source_log = store_lib.SweepStore(directory).log_path
                if os.path.exists(source_log):
                    with open(source_log, encoding="utf-8", errors="replace") as f:
                        shutil.copyfileobj(f, log)
        st.rebuild_table(sorted(manifest["trials"]))
        if os.path.isdir(path):
            os.rmdir(path)  # checked empty above
        os.rename(build, path)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    missing = tuple(
        f"{info['describe']} seed {info['seed']}"
        for trial_id, info in sorted(manifest["trials"].items())
        if trial_id not in owner
    )
    return MergeResult(store_lib.SweepStore(path).results_path, len(owner), missing)


def main(argv: Sequence[str] | None = None) -> int:
    """Merges the directories; returns the exit code (0 also when some trials have no record)."""
    parser = cli.ArgumentParser(prog="sweeps.merge", description=__doc__.split("\n")[0])
    parser.add_argument("out", metavar="OUT", help="the merged sweep directory (new)")
    parser.add_argument("dirs", metavar="DIR", nargs="+", help="sweep directories (the shards)")
    args = parser.parse_args(argv)
    try:
        result = merge(args.out, args.dirs)
    except MergeError as e:
        if cli.debug_requested():
            raise
        print(f"sweeps.merge: error: {cli.one_line(e)}", file=sys.stderr)
        return cli.EXIT_USAGE
    if result.missing:
        shown = "; ".join(result.missing[:5])
        more = f" (+{len(result.missing) - 5} more)" if len(result.missing) > 5 else ""
        print(
            f"sweeps.merge: {len(result.missing)} trials of the sweep have no record in any "
            f"directory: {shown}{more}; rerun their shard's command and merge again (or run "
            "the sweep on the merged directory)",
            file=sys.stderr,
        )
    print(result.results_path)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="sweeps.merge"))
