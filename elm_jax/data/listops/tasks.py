"""The ListOps datasets served by `elm_jax.data.load`: `listops` (LRA files) and `listops_default`.

Both are `SequenceDataset`s of 15 one-hot channels (the digits 0-9, `[MAX [MIN [MED [SM`, `]`;
token id k of `elm_jax.data.listops.synthetic` is channel k - 1) and 10 classes. Expressions are padded
at the front to `seq_len` steps with a token that encodes as the zero vector, so the last real
token (the closing `]`) is the last step, the one the classifier reads. An expression longer
than `seq_len` keeps its first `seq_len` tokens, as LRA's input pipeline does
(`info["truncated"]` counts them per split); `seq_len=None` uses the longest expression
possible (the generator's max_length - 1, LRA's 1,999 for the real files).

`listops_default` is generated here (DEFAULT_PARAMS: LRA's grammar, depth and argument limits,
but 11-99 tokens instead of 501-1,999 so that a CPU run takes minutes, and 20,000 / 2,000 /
2,000 examples) and labelled `source="listops-default"`, never as the LRA files.
"""

from __future__ import annotations

import warnings

import numpy as np

from elm_jax.data.common import DataNotFoundError, check_positive_int, file_record
from elm_jax.data.listops import files as listops_files
from elm_jax.data.listops import synthetic
from elm_jax.data.sequences import SequenceDataset

NUM_CHANNELS = synthetic.VOCAB_SIZE - 1  # the 15 real tokens; padding encodes as zeros
FRONT_PAD = NUM_CHANNELS
LRA_MAX_LENGTH = 2000  # LRA's generator keeps length < 2000
DEFAULT_PARAMS = synthetic.ListOpsParams(
    max_depth=10, max_args=10, min_length=10, max_length=100,
    num_train=20_000, num_validation=2_000, num_test=2_000, seed=0,
)  # fmt: skip


def front_padded(arrays: dict, seq_len: int) -> tuple[np.ndarray, int]:
    """([n, seq_len] uint8 channel ids with FRONT_PAD before each expression, number cut).

    Token id k (1..15) becomes channel k - 1; an expression longer than seq_len keeps its
    first seq_len tokens.
    """
    tokens, lengths = arrays["tokens"], arrays["lengths"]
    kept = np.minimum(lengths, seq_len)
    out = np.full((len(lengths), seq_len), FRONT_PAD, dtype=np.uint8)
    for row, (ids, length) in enumerate(zip(tokens, kept, strict=True)):
        if length:
            out[row, seq_len - length :] = ids[:length] - 1
    return out, int((lengths > seq_len).sum())


def _dataset(name, source, splits, seq_len, files, extra, input_dropout) -> SequenceDataset:
    seq_len = check_positive_int("seq_len", seq_len)
    padded, truncated = {}, {}
    for split, arrays in splits.items():
        padded[split], truncated[split] = front_padded(arrays, seq_len)
    if any(truncated.values()):
        longest = max(int(arrays["lengths"].max()) for arrays in splits.values())
        warnings.warn(
            f"{name}: seq_len={seq_len} cuts {truncated} expressions to their first {seq_len} "
            f"tokens (LRA's truncation; their labels need the rest); seq_len={longest} keeps "
            "them whole",
            stacklevel=3,
        )
    examples = {s: (padded[s], splits[s]["labels"]) for s in synthetic.SPLITS}
    info = {"padding": "front", "truncated": truncated,
            "tokens": list(synthetic.VOCAB[1:]), **extra}  # fmt: skip
    return SequenceDataset(
        examples["train"], examples["test"], validation=examples["validation"],
        num_classes=synthetic.NUM_CLASSES, vocab_size=NUM_CHANNELS, pad_token=FRONT_PAD,
        input_dropout=input_dropout, name=name, source=source, files=files, extra_info=info,
    )  # fmt: skip


def load_listops_default(
    name: str, data_dir: str | None, seq_len: int | None = None, input_dropout: float = 0.0
) -> SequenceDataset:
    """The generated default (cached under the data directory, built on first use)."""
    folder = listops_files.build_default(data_dir, DEFAULT_PARAMS)
    splits, manifest, records = listops_files.read_default(folder)
    extra = {"generator": manifest["params"], "generator_version": manifest["generator_version"],
             "length": {s: manifest["statistics"][s]["length"] for s in synthetic.SPLITS}}  # fmt: skip
    seq_len = DEFAULT_PARAMS.max_length - 1 if seq_len is None else seq_len
    return _dataset(name, "listops-default", splits, seq_len, records, extra, input_dropout)


def load_listops(
    name: str, data_dir: str | None, seq_len: int | None = None, input_dropout: float = 0.0
) -> SequenceDataset:
    """LRA's ListOps files from the data directory; DataNotFoundError when none is named."""
    if data_dir is None:
        raise DataNotFoundError(
            f"{name}: no data directory named (data_dir and $ELM_DATA_DIR unset). "
            + listops_files.LRA_HOWTO
        )
    paths = listops_files.find_lra_files(data_dir)
    splits = {split: listops_files.read_lra_tsv(path) for split, path in paths.items()}
    seq_len = LRA_MAX_LENGTH - 1 if seq_len is None else seq_len
    files = [file_record(paths[s]) for s in synthetic.SPLITS]
    return _dataset(name, "listops-lra", splits, seq_len, files, {}, input_dropout)
