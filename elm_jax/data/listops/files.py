"""ListOps on disk: the generated default's cache (.npz + manifest) and LRA's `.tsv` files.

Generated default: `<cache>/listops_default/v1-<key>/` holds `train.npz`, `validation.npz`,
`test.npz` (arrays `tokens [n, w] uint8` right-padded with 0, `lengths [n] int32`, `labels [n]
int32`) and `manifest.json` (generator version, parameters and seed, each file's sha256 and
size, label counts, length statistics, generation time). The npz members carry a fixed date,
so the same parameters give byte-identical files (the sha256 in docs/data.md). Files are
written under temporary names and the folder renamed into place.

LRA release (`lra_release/listops-1000/`): `basic_train.tsv`, `basic_val.tsv`, `basic_test.tsv`,
tab-separated with a header `Source<TAB>Target`; Source is the expression with LRA's
parentheses, `( ( ( [MAX 2 ) 9 ) ] )` for `[MAX 2 9 ]`, Target its value. Parentheses are
dropped on reading (they are not tokens), the expression must parse and its value must equal
Target, or DataCorruptError names the file and line.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import os
import time
import zipfile

import numpy as np

from elm_jax.data.common import (
    ChecksumError,
    DataCorruptError,
    DataNotFoundError,
    cache_dir,
    file_record,
    sha256_file,
)
from elm_jax.data.listops import synthetic
from elm_jax.files import atomic_folder

GENERATOR_VERSION = 1
ARRAYS = ("tokens", "lengths", "labels")
LRA_FILES = {"train": "basic_train.tsv", "validation": "basic_val.tsv", "test": "basic_test.tsv"}
LRA_SUBFOLDERS = ("", "listops-1000", os.path.join("lra_release", "listops-1000"))
LRA_HOWTO = (
    "Download lra_release.gz from the Long Range Arena repository "
    "(github.com/google-research/long-range-arena), unpack it and name the folder holding "
    "basic_train.tsv, basic_val.tsv and basic_test.tsv (lra_release/listops-1000) as the data "
    "directory; or use the generated default with name='listops_default'."
)


def params_key(params: synthetic.ListOpsParams) -> str:
    """Cache folder name: the generator version and a hash of every parameter."""
    text = json.dumps(dataclasses.asdict(params), sort_keys=True)
    return f"v{GENERATOR_VERSION}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def default_dir(data_dir: str | None, params: synthetic.ListOpsParams) -> str:
    """Folder of the cached default generated with `params`."""
    return os.path.join(cache_dir(data_dir), "listops_default", params_key(params))


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """A deflated .npz whose bytes depend only on the arrays (members dated 1980-01-01)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ARRAYS:
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]))
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def read_npz(path: str) -> dict[str, np.ndarray]:
    """The three arrays of one split file, checked; DataCorruptError naming the file if not."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise DataCorruptError(f"{path}: not a readable ListOps split file ({error})") from error
    tokens, lengths, labels = (arrays[name] for name in ARRAYS)
    n = len(labels)
    if tokens.ndim != 2 or tokens.shape[0] != n or lengths.shape != (n,):
        raise DataCorruptError(
            f"{path}: shapes tokens {tokens.shape}, lengths {lengths.shape}, labels "
            f"{labels.shape}; expected [n, w], [n], [n]"
        )
    check_tokens(path, tokens, lengths, labels)
    return arrays


def check_tokens(where: str, tokens: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> None:
    """Token ids in 0..15, padding exactly after each length, labels 0..9."""
    if tokens.size and int(tokens.max()) >= synthetic.VOCAB_SIZE:
        raise DataCorruptError(f"{where}: token id {int(tokens.max())}; valid 0..15")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < synthetic.NUM_CLASSES):
        raise DataCorruptError(f"{where}: labels span {labels.min()}..{labels.max()}; valid 0..9")
    real = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    if np.any((tokens != synthetic.PAD) != real):
        raise DataCorruptError(f"{where}: padding does not match the lengths")


def build_default(data_dir: str | None, params: synthetic.ListOpsParams) -> str:
    """Folder of the cached default for `params`, generated first when absent (one builder)."""
    final = default_dir(data_dir, params)
    if os.path.isfile(os.path.join(final, "manifest.json")):
        return final
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with open(final + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(os.path.join(final, "manifest.json")):
            _build(final, params)
    return final


def _build(final: str, params: synthetic.ListOpsParams) -> None:
    start = time.time()
    splits = synthetic.generate(params)
    seconds = time.time() - start
    with atomic_folder(final, "manifest.json") as tmp:
        files = {}
        for split, arrays in splits.items():
            path = os.path.join(tmp, split + ".npz")
            write_npz(path, arrays)
            files[split] = {"file": split + ".npz", "sha256": sha256_file(path),
                            "bytes": os.path.getsize(path)}  # fmt: skip
        manifest = {
            "generator": "listops",
            "generator_version": GENERATOR_VERSION,
            "key": params_key(params),
            "params": dataclasses.asdict(params),
            "vocab": list(synthetic.VOCAB),
            "files": files,
            "statistics": {split: statistics(arrays) for split, arrays in splits.items()},
            "generation_seconds": round(seconds, 1),
        }
        with open(os.path.join(tmp, "manifest.json"), "w") as handle:
            json.dump(manifest, handle, indent=1)


def statistics(arrays: dict[str, np.ndarray]) -> dict:
    """Label counts and token-length quantiles of one split."""
    lengths = arrays["lengths"]
    counts = np.bincount(arrays["labels"], minlength=synthetic.NUM_CLASSES)
    return {
        "num_examples": int(len(lengths)),
        "label_counts": [int(c) for c in counts],
        "length": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                   "mean": float(lengths.mean()), "max": int(lengths.max())},
    } if len(lengths) else {"num_examples": 0, "label_counts": [0] * 10}  # fmt: skip


def read_default(folder: str) -> tuple[dict[str, dict], dict, list[dict]]:
    """(splits, manifest, file records) of a cached default; ChecksumError if a file changed."""
    with open(os.path.join(folder, "manifest.json")) as handle:
        manifest = json.load(handle)
    splits, records = {}, []
    for split, entry in manifest["files"].items():
        path = os.path.join(folder, entry["file"])
        record = file_record(path)
        if record["sha256"] != entry["sha256"]:
            raise ChecksumError(
                f"{path}: sha256 {record['sha256']} differs from the manifest's {entry['sha256']}; "
                f"delete {folder} to regenerate it"
            )
        splits[split] = read_npz(path)
        records.append(record)
    return splits, manifest, records


def find_lra_files(data_dir: str) -> dict[str, str]:
    """{split: path} of LRA's three ListOps files in data_dir (or its listops-1000 folders)."""
    for sub in LRA_SUBFOLDERS:
        folder = os.path.join(data_dir, sub) if sub else data_dir
        paths = {split: os.path.join(folder, name) for split, name in LRA_FILES.items()}
        present = [p for p in paths.values() if os.path.isfile(p)]
        if len(present) == len(paths):
            return paths
        if present:
            missing = [p for p in paths.values() if not os.path.isfile(p)]
            raise DataNotFoundError(f"found {present[0]} but not {', '.join(missing)}. {LRA_HOWTO}")
    searched = ", ".join(os.path.join(data_dir, sub, "basic_*.tsv") for sub in LRA_SUBFOLDERS)
    raise DataNotFoundError(f"ListOps (LRA) not found (searched {searched}). {LRA_HOWTO}")


def parse_expression(source: str) -> tuple[list[int], int]:
    """LRA's Source text (parentheses allowed) to (token ids, value); ValueError if malformed."""
    ids, stack, value = [], [], None
    for token in source.split():
        if token in ("(", ")"):
            continue
        if value is not None:
            raise ValueError(f"token {token!r} after the complete expression")
        if token not in synthetic.TOKEN_IDS:
            raise ValueError(f"unknown token {token!r}; valid: {' '.join(synthetic.VOCAB[1:])} ( )")
        ids.append(synthetic.TOKEN_IDS[token])
        if token in synthetic.OPERATORS:
            stack.append((token, []))
            continue
        if token == synthetic.END:
            if not stack or not stack[-1][1]:
                raise ValueError("']' without an open operator and its arguments")
            operator, args = stack.pop()
            result = synthetic.apply_operator(operator, args)
        else:
            result = int(token)
        if stack:
            stack[-1][1].append(result)
        else:
            value = result
    if value is None:
        raise ValueError("the expression is empty or not closed")
    return ids, value


def read_lra_tsv(path: str) -> dict[str, np.ndarray]:
    """One LRA split file as the default's arrays; DataCorruptError naming file and line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        if header != ["Source", "Target"]:
            raise DataCorruptError(f"{path}:1: header {header!r}; expected ['Source', 'Target']")
        for number, line in enumerate(handle, start=2):
            if not line.strip():
                continue
            rows.append(_parse_row(path, number, line))
    if not rows:
        raise DataCorruptError(f"{path}: no examples after the header")
    lengths = np.array([len(ids) for ids, _ in rows], dtype=np.int32)
    tokens = np.zeros((len(rows), int(lengths.max())), dtype=np.uint8)
    for row, (ids, _) in enumerate(rows):
        tokens[row, : len(ids)] = ids
    return {"tokens": tokens, "lengths": lengths,
            "labels": np.array([label for _, label in rows], dtype=np.int32)}  # fmt: skip


def _parse_row(path: str, number: int, line: str) -> tuple[list[int], int]:
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 2:
        raise DataCorruptError(f"{path}:{number}: {len(fields)} tab-separated fields; expected 2")
    source, target = fields
    try:
        label = int(target)
    except ValueError:
        raise DataCorruptError(f"{path}:{number}: Target {target!r} is not an integer") from None
    if not 0 <= label < synthetic.NUM_CLASSES:
        raise DataCorruptError(f"{path}:{number}: Target {label}; valid 0..9")
    try:
        ids, value = parse_expression(source)
    except ValueError as error:
        raise DataCorruptError(f"{path}:{number}: Source does not parse: {error}") from None
    if value != label:
        raise DataCorruptError(f"{path}:{number}: Source evaluates to {value}, Target is {label}")
    return ids, label
