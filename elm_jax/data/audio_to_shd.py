"""Command: encode a folder of labelled recordings into one SHD-format HDF5 file.

    python -m elm_jax.data.audio_to_shd WAV_DIR OUT.h5 [--workers N]

Files must follow the FSDD naming `{digit}_{speaker}_{index}.wav` (label = digit, 0..19 allowed
so German digits can use 10..19). Each recording goes through the same cochlea encoder as the
embedded SHD default; `extra/speaker` holds speaker ids (numbered in sorted name order),
`extra/speaker_names` their names and `extra/keys` the file names.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import struct
import sys
import time

import numpy as np
import scipy.io.wavfile

from elm_jax import cli
from elm_jax.data.cochlea import CochleaConfig, encode_batch
from elm_jax.data.shd.files import write_shd

FSDD_PATTERN = re.compile(r"^(\d+)_([A-Za-z0-9-]+)_(\d+)\.wav$")


def parse_name(filename: str) -> tuple[int, str, int]:
    """(label, speaker, index) from `{digit}_{speaker}_{index}.wav`; ValueError otherwise."""
    match = FSDD_PATTERN.match(filename)
    if match is None:
        raise ValueError(
            f"file name {filename!r} does not follow the FSDD naming {{digit}}_{{speaker}}_{{index}}.wav"
        )
    label = int(match.group(1))
    if not 0 <= label < 20:
        raise ValueError(f"label {label} of {filename!r} is outside 0..19")
    return label, match.group(2), int(match.group(3))


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Mono float audio and sample rate of a WAV file (any PCM or float encoding)."""
    try:
        rate, audio = scipy.io.wavfile.read(path)
    except (ValueError, OSError, EOFError, struct.error) as err:  # struct: a truncated header
        raise ValueError(f"{path} is not a readable WAV file: {err}") from err
    audio = np.asarray(audio)
    if audio.dtype.kind in "iu":
        info = np.iinfo(audio.dtype)
        audio = (audio.astype(np.float64) - (info.max + info.min + 1) / 2) / (info.max + 1)
    audio = audio.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio, int(rate)


def check_wav(path: str) -> None:
    """Raises ValueError naming `path` when it is not a readable, non-empty WAV file."""
    try:
        rate, audio = scipy.io.wavfile.read(path)
    except (ValueError, OSError, EOFError, struct.error) as err:
        raise ValueError(f"{path} is not a readable WAV file: {err}") from err
    if rate <= 0 or np.asarray(audio).shape[0] == 0:
        raise ValueError(
            f"{path} holds no audio (rate {rate}, {np.asarray(audio).shape[0]} samples)"
        )


def _encode_files(paths: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    by_rate: dict[int, list[int]] = {}
    audio = []
    for i, path in enumerate(paths):
        samples, rate = read_wav(path)
        audio.append(samples)
        by_rate.setdefault(rate, []).append(i)
    out: list = [None] * len(paths)
    for rate, members in by_rate.items():
        for i, spikes in zip(
            members, encode_batch([audio[i] for i in members], rate, CochleaConfig()), strict=True
        ):
            out[i] = spikes
    return out


def convert(wav_dir: str, out_path: str, workers: int | None = None, chunk: int = 50) -> dict:
    """Encodes every `*.wav` of `wav_dir` (sorted by name) into `out_path`; returns a summary."""
    if not os.path.isdir(wav_dir):
        raise FileNotFoundError(
            f"WAV_DIR {wav_dir!r} is not a directory; pass a folder of "
            "{digit}_{speaker}_{index}.wav recordings"
        )
    names = sorted(n for n in os.listdir(wav_dir) if n.lower().endswith(".wav"))
    if not names:
        raise ValueError(
            f"no .wav files in {wav_dir!r}; expected {{digit}}_{{speaker}}_{{index}}.wav recordings"
        )
    parsed = [parse_name(n) for n in names]
    speaker_names = sorted({speaker for _, speaker, _ in parsed})
    paths = [os.path.join(wav_dir, n) for n in names]
    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK | os.X_OK):
        raise ValueError(f"OUT {out_path!r}: {out_dir} is not a writable directory")
    for path in paths:  # a bad file fails before any encoding starts
        check_wav(path)
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    start = time.time()
    with multiprocessing.get_context("spawn").Pool(workers or os.cpu_count()) as pool:
        spikes = [s for part in pool.map(_encode_files, chunks) for s in part]
    write_shd(out_path, [t for t, _ in spikes], [u for _, u in spikes], [p[0] for p in parsed],
              [speaker_names.index(p[1]) for p in parsed], names,
              extra_strings={"speaker_names": speaker_names})  # fmt: skip
    counts = np.array([len(t) for t, _ in spikes])
    return {"out": out_path, "num_samples": len(names), "speakers": speaker_names,
            "seconds": round(time.time() - start, 1), "spikes_per_sample_mean": float(counts.mean()),
            "spikes_per_sample_median": float(np.median(counts))}  # fmt: skip


def _main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(
        prog="elm_jax.data.audio_to_shd", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("wav_dir")
    parser.add_argument("out")
    parser.add_argument("--workers", type=cli.positive_int, default=None)
    args = parser.parse_args(argv)
    print(json.dumps(convert(args.wav_dir, args.out, args.workers)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit code (failures: one line on stderr, docs/cli.md)."""
    return cli.run(_main, argv, prog="elm_jax.data.audio_to_shd")


if __name__ == "__main__":
    sys.exit(main())
