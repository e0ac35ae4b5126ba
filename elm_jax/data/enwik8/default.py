"""`enwiki-sample`: the embedded Enwik8 stand-in (docs/science.md §5 split, never called enwik8).

The English Wikipedia XML sample shipped inside the PyPI wheel of gensim 4.4.0 (CC BY-SA,
see docs/data.md). It is fetched once with `pip download --no-deps` (no install), the member is
extracted, both sha256 pins are verified, and the decompressed bytes are cached atomically.
"""

from __future__ import annotations

import bz2
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from elm_jax.data.common import (
    ChecksumError,
    DataCorruptError,
    DataNotFoundError,
    cache_dir,
    file_record,
    sha256_bytes,
    sha256_file,
)
from elm_jax.data.enwik8.tasks import ByteDataset
from elm_jax.files import write_bytes_atomic

GENSIM_REQUIREMENT = "gensim==4.4.0"
MEMBER = (
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
)
MEMBER_SHA256 = "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d"
DECOMPRESSED_BYTES = 6_089_746
DECOMPRESSED_SHA256 = "34c1c63050c87cc8477b9ae36b1cb0edf372612c92938b742e579a7109c20fa4"
CACHE_NAME = os.path.join("enwiki_sample", "enwiki-sample-gensim-4.4.0.xml")


def verify_member(member_bytes: bytes) -> bytes:
    """Checks the bz2 member against its pin, decompresses it and checks the result's pins.

    Raises ChecksumError on a sha256 mismatch, DataCorruptError when bz2 cannot decompress it.
    """
    got = sha256_bytes(member_bytes)
    if got != MEMBER_SHA256:
        raise ChecksumError(
            f"enwiki-sample member sha256 is {got}, expected {MEMBER_SHA256} ({MEMBER} of {GENSIM_REQUIREMENT})"
        )
    try:
        text = bz2.decompress(member_bytes)
    except (OSError, EOFError, ValueError) as err:
        raise DataCorruptError(f"enwiki-sample member does not decompress: {err}") from err
    verify_decompressed(text)
    return text


def verify_decompressed(text: bytes, where: str = "enwiki-sample") -> None:
    """Checks the decompressed sample's size and sha256 pins."""
    if len(text) != DECOMPRESSED_BYTES:
        raise DataCorruptError(f"{where}: expected {DECOMPRESSED_BYTES} bytes, found {len(text)}")
    got = sha256_bytes(text)
    if got != DECOMPRESSED_SHA256:
        raise ChecksumError(f"{where}: sha256 is {got}, expected {DECOMPRESSED_SHA256}")


def extract_from_wheel(wheel_path: str) -> bytes:
    """Reads, verifies and decompresses the sample from a gensim wheel file."""
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            member = wheel.read(MEMBER)
    except KeyError as err:
        raise DataCorruptError(f"{wheel_path} has no member {MEMBER}") from err
    except zipfile.BadZipFile as err:
        raise DataCorruptError(f"{wheel_path} is not a readable wheel (zip): {err}") from err
    return verify_member(member)


def download_wheel(dest: str) -> str:
    """`pip download --no-deps gensim==4.4.0` into `dest` (any platform wheel carries the sample)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        GENSIM_REQUIREMENT,
        "-d",
        dest,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = glob.glob(os.path.join(dest, "gensim-4.4.0-*.whl"))
    if result.returncode != 0 or not wheels:
        raise DataNotFoundError(
            f"could not obtain the enwiki-sample: `{' '.join(cmd)}` failed "
            f"(exit {result.returncode}): {result.stderr.strip()[-500:]}. It needs access to PyPI "
            "once; alternatively put enwik8(.zip) in the data directory."
        )
    return wheels[0]


def prepare_enwiki_sample(data_dir: str | None = None, wheel_path: str | None = None) -> str:
    """Makes sure the verified sample is cached; returns its path.

    Uses `wheel_path` when given (no download), else `pip download` once. A cached file is
    re-verified; a corrupt one raises instead of being silently replaced.
    """
    path = os.path.join(cache_dir(data_dir), CACHE_NAME)
    if os.path.isfile(path):
        if os.path.getsize(path) != DECOMPRESSED_BYTES or sha256_file(path) != DECOMPRESSED_SHA256:
            raise ChecksumError(
                f"cached enwiki-sample {path} does not match its pins "
                f"({DECOMPRESSED_BYTES} bytes, sha256 {DECOMPRESSED_SHA256}); delete it to re-fetch"
            )
        return path
    if wheel_path is not None:
        text = extract_from_wheel(wheel_path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            text = extract_from_wheel(download_wheel(tmp))
    write_bytes_atomic(path, text)
    return path


def load_enwiki_sample(data_dir: str | None = None, *, seq_len: int = 512) -> ByteDataset:
    """The enwiki-sample as a ByteDataset labelled `enwiki-sample` (split 90/5/5 like Enwik8)."""
    path = prepare_enwiki_sample(data_dir)
    with open(path, "rb") as handle:
        text = handle.read()
    verify_decompressed(text, where=path)
    data = np.frombuffer(text, dtype=np.uint8)
    return ByteDataset(
        data,
        name="enwiki_sample",
        source="enwiki-sample",
        seq_len=seq_len,
        files=[file_record(path)],
    )
