"""The real Enwik8 files: `load_enwik8` reads `enwik8.zip` (member `enwik8`) or the raw
`enwik8` file from a data directory and checks that it holds exactly 10^8 bytes.
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from elm_jax.data.common import DataCorruptError, DataNotFoundError, file_record
from elm_jax.data.enwik8.tasks import ByteDataset

ENWIK8_BYTES = 100_000_000
ENWIK8_FILES = ("enwik8.zip", "enwik8")
ENWIK8_HOWTO = (
    "Download http://mattmahoney.net/dc/enwik8.zip (the Hutter Prize file, 10^8 bytes) and put "
    "enwik8.zip or the unzipped enwik8 in the data directory (config data.data_dir or "
    "$ELM_DATA_DIR); or use the embedded default with name='enwiki_sample'."
)


def find_enwik8(data_dir: str | None) -> str | None:
    """Path of enwik8.zip or enwik8 in `data_dir`, or None when neither is there."""
    if data_dir is None:
        return None
    for name in ENWIK8_FILES:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    return None


def read_enwik8_bytes(path: str, expected_bytes: int = ENWIK8_BYTES) -> np.ndarray:
    """Reads enwik8 from `path` (zip with member `enwik8`, or the raw file) and checks its size."""
    if path.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if "enwik8" not in names:
                    raise DataCorruptError(f"{path} has no member 'enwik8' (members: {names[:5]})")
                raw = archive.read("enwik8")
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error) as err:
            raise DataCorruptError(
                f"{path} is not a readable zip file ({err}); {ENWIK8_HOWTO}"
            ) from err
    else:
        with open(path, "rb") as handle:
            raw = handle.read()
    if len(raw) != expected_bytes:
        raise DataCorruptError(
            f"{path}: enwik8 must hold exactly {expected_bytes} bytes, found {len(raw)}; "
            f"the file is truncated or not enwik8. {ENWIK8_HOWTO}"
        )
    return np.frombuffer(raw, dtype=np.uint8)


def load_enwik8(
    data_dir: str | None, *, seq_len: int = 512, expected_bytes: int = ENWIK8_BYTES
) -> ByteDataset:
    """The real Enwik8 from `data_dir`; raises DataNotFoundError naming where it looked."""
    path = find_enwik8(data_dir)
    if path is None:
        searched = [os.path.join(data_dir, n) for n in ENWIK8_FILES] if data_dir else []
        raise DataNotFoundError(
            f"enwik8 not found (searched {searched or 'no data directory: data_dir and $ELM_DATA_DIR unset'}). "
            + ENWIK8_HOWTO
        )
    data = read_enwik8_bytes(path, expected_bytes)
    return ByteDataset(
        data, name="enwik8", source="enwik8", seq_len=seq_len, files=[file_record(path)]
    )
