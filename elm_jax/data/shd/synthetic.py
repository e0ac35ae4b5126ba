"""The embedded SHD default: the 20 SHD words spoken by espeak-ng 'speakers', cochlea-encoded.

Each 'speaker' is an espeak-ng voice variant with its own base pitch, pitch range, speaking
rate and vocal-tract scaling (a resampling factor that shifts formants). Every speaker says the
English digits zero..nine (labels 0-9, English voice) and the German null..neun (labels 10-19,
German voice) `repetitions` times with small per-utterance jitter (rate, pitch, onset, level,
background noise). Training and test speakers use disjoint voice variants, so the test set holds
out speakers as in SHD. Output: SHD-format `shd_train.h5` / `shd_test.h5`.

espeak-ng keeps internal state between utterances that its random seed does not reset, so each
speaker is synthesised in a fresh process in a fixed order: the output is then a pure function
of the generator version and parameters, whatever the number of worker processes.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np

from elm_jax.data.cochlea import CochleaConfig, encode_batch
from elm_jax.files import atomic_path

GENERATOR_VERSION = 2
ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m8", "f1", "f2", "f3", "f5", "klatt", "klatt2",
    "klatt4", "croak", "adam", "anika", "aunty", "benjamin", "boris", "ed", "iven", "john", "max",
)  # fmt: skip
TEST_VARIANTS = ("m7", "f4", "klatt3", "david", "linda", "edward")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What defines the default (hashed into its cache key)."""

    repetitions: int = 5
    seed: int = 0
    train_variants: tuple[str, ...] = TRAIN_VARIANTS
    test_variants: tuple[str, ...] = TEST_VARIANTS
    noise_db: tuple[float, float] = (-45.0, -30.0)
    rate_wpm: tuple[int, int] = (80, 140)  # espeak words/minute: digits of about 0.5-0.9 s
    pitch: tuple[int, int] = (25, 75)
    pitch_range: tuple[int, int] = (30, 90)
    tract: tuple[float, float] = (0.92, 1.08)
    cochlea: CochleaConfig = CochleaConfig()

    def key(self) -> str:
        """Short stable hash of the generator version and every parameter."""
        blob = json.dumps(
            {"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True
        )
        return f"v{GENERATOR_VERSION}-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


class EspeakSynth:
    """Minimal ctypes binding of libespeak-ng (from the `espeakng-loader` wheel), synchronous."""

    def __init__(self) -> None:
        # Only to synthesise voices: the prepared default is read without it.
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise (returned {self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )
        self._callback = callback_type(self._collect)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def say(
        self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int
    ) -> np.ndarray:
        """Synthesises `text` with `voice` (e.g. "en+m3"); returns float32 audio in [-1, 1]."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_RANGE, int(pitch_range), 0)
        self._lib.espeak_ng_SetRandSeed(int(seed))
        self._chunks = []
        data = text.encode("utf-8")
        self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0


def speaker_table(cfg: SynthConfig) -> list[dict]:
    """One dict per speaker (id, split, variant and voice parameters), training speakers first."""
    speakers = []
    variants = [("train", v) for v in cfg.train_variants] + [("test", v) for v in cfg.test_variants]
    for speaker_id, (split, variant) in enumerate(variants):
        rng = np.random.default_rng([cfg.seed, speaker_id, 0])
        speakers.append({
            "speaker": speaker_id,
            "split": split,
            "variant": variant,
            "pitch": int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1)),
            "pitch_range": int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1)),
            "rate": int(rng.integers(cfg.rate_wpm[0], cfg.rate_wpm[1] + 1)),
            "tract": float(rng.uniform(*cfg.tract)),
        })  # fmt: skip
    return speakers


def _utterance(synth: EspeakSynth, spk: dict, label: int, rep: int, cfg: SynthConfig) -> np.ndarray:
    """One jittered recording of word `label` by speaker `spk` at the synthesiser's rate."""
    rng = np.random.default_rng([cfg.seed, spk["speaker"], label, rep, 1])
    language, word = ("en", ENGLISH[label]) if label < 10 else ("de", GERMAN[label - 10])
    audio = synth.say(
        word,
        voice=f"{language}+{spk['variant']}",
        rate=round(spk["rate"] * rng.uniform(0.9, 1.1)),
        pitch=int(np.clip(spk["pitch"] + rng.integers(-5, 6), 0, 99)),
        pitch_range=spk["pitch_range"],
        seed=int(rng.integers(1, 2**31 - 1)),
    )
    # Vocal-tract scaling: resample so formants shift by the speaker's factor.
    tract = spk["tract"] * rng.uniform(0.98, 1.02)
    positions = np.arange(0, len(audio) - 1, tract)
    audio = np.interp(positions, np.arange(len(audio)), audio)
    onset = np.zeros(int(rng.uniform(0.0, 0.08) * synth.sample_rate))
    audio = np.concatenate([onset, audio, np.zeros(int(0.05 * synth.sample_rate))])
    peak = np.max(np.abs(audio)) or 1.0
    noise_level = peak * 10 ** (rng.uniform(*cfg.noise_db) / 20.0)
    audio = audio * rng.uniform(0.5, 1.0) / peak + rng.normal(0.0, noise_level / peak, len(audio))
    return audio.astype(np.float32)


def synthesise_speaker(spk: dict, cfg: SynthConfig) -> list[dict]:
    """Every utterance of one speaker (words in label order, then repetitions), cochlea-encoded."""
    synth = EspeakSynth()
    recordings, meta = [], []
    for label in range(20):
        for rep in range(cfg.repetitions):
            recordings.append(_utterance(synth, spk, label, rep, cfg))
            meta.append((label, rep))
    spikes = encode_batch(recordings, synth.sample_rate, cfg.cochlea)
    return [
        {"times": t, "units": u, "label": label, "speaker": spk["speaker"],
         "key": f"{spk['variant']}_{label}_{rep}"}
        for (t, u), (label, rep) in zip(spikes, meta, strict=True)
    ]  # fmt: skip


def _run_speakers(speakers: list[dict], cfg: SynthConfig, workers: int) -> list[list[dict]]:
    """Synthesises each speaker in its own fresh `python -m elm_jax.data.shd.synthetic` process.

    Subprocesses rather than a multiprocessing pool: a fresh process per speaker is what makes
    espeak-ng deterministic, and unlike `spawn` it never re-imports the caller's main script.
    """
    with tempfile.TemporaryDirectory(prefix="elm-synth-") as tmp:
        job = os.path.join(tmp, "job.pkl")
        with open(job, "wb") as handle:
            pickle.dump((speakers, cfg), handle)
        pending, running, done = list(range(len(speakers))), [], {}
        while pending or running:
            while pending and len(running) < workers:
                k = pending.pop(0)
                out = os.path.join(tmp, f"speaker{k}.pkl")
                cmd = [sys.executable, "-m", "elm_jax.data.shd.synthetic", job, str(k), out]
                with open(out + ".err", "wb") as err:  # a file: a full pipe could block the child
                    running.append((k, out, subprocess.Popen(cmd, stderr=err)))
            k, out, proc = running.pop(0)
            if proc.wait() != 0:
                for _, _, other in running:
                    other.kill()
                with open(out + ".err", "rb") as err:
                    message = err.read().decode(errors="replace")[-2000:]
                raise RuntimeError(
                    f"synthesising speaker {k} failed (exit {proc.returncode}): {message}"
                )
            with open(out, "rb") as handle:
                done[k] = pickle.load(handle)
        return [done[k] for k in range(len(speakers))]


def generate(cfg: SynthConfig = SynthConfig(), workers: int | None = None) -> dict[str, list[dict]]:
    """All utterances, {"train": [...], "test": [...]}, one fresh process per speaker."""
    speakers = speaker_table(cfg)
    workers = workers or min(len(speakers), os.cpu_count() or 1)
    per_speaker = _run_speakers(speakers, cfg, workers)
    out: dict[str, list[dict]] = {"train": [], "test": []}
    for spk, items in zip(speakers, per_speaker, strict=True):
        out[spk["split"]].extend(items)
    return out


def _main(job: str, index: str, out: str) -> None:
    with open(job, "rb") as handle:
        speakers, cfg = pickle.load(handle)
    items = synthesise_speaker(speakers[int(index)], cfg)
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        pickle.dump(items, handle)


if __name__ == "__main__":
    _main(*sys.argv[1:4])
