"""Embedded SHD default: cochlea encoder, espeak-ng synthesis, caching, fallback, audio_to_shd."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.io.wavfile

from elm_jax import data
from elm_jax.data import audio_to_shd, cochlea
from elm_jax.data.shd import default as shd_default
from elm_jax.data.shd import files as shd
from elm_jax.data.shd import synthetic as synth_shd

TINY = synth_shd.SynthConfig(repetitions=1, train_variants=("m1", "f2"), test_variants=("m3",))


def tone(freq: float, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_erb_centres_span_range_and_increase():
    c = cochlea.erb_centres(700, 60.0, 8000.0)
    assert c.shape == (700,) and np.all(np.diff(c) > 0)
    np.testing.assert_allclose([c[0], c[-1]], [60.0, 8000.0], rtol=1e-9)


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0])
def test_pure_tone_excites_channels_around_its_frequency(freq):
    times, units = cochlea.encode(tone(freq), 16000)
    assert len(times) > 0
    centres = cochlea.erb_centres(700, 60.0, 8000.0)
    best = int(np.argmin(np.abs(centres - freq)))
    peak = int(np.bincount(units, minlength=700).argmax())
    assert abs(peak - best) <= 15  # within ~0.7 ERB of the tone
    assert np.all((times >= 0) & (times <= 0.5 + 1e-3))


def test_silence_gives_no_spikes():
    times, units = cochlea.encode(np.zeros(8000, np.float32), 16000)
    assert len(times) == 0 and len(units) == 0


def test_batched_lif_matches_scalar_loop():
    rng = np.random.default_rng(0)
    drive = rng.uniform(0.0, 0.6, (3, 40, 5)).astype(np.float32)
    cfg = cochlea.CochleaConfig()
    got = cochlea.lif_spikes_batch(drive, cfg)
    decay = np.float32(np.exp(-cfg.hop_ms / cfg.tau_ms))
    for n in range(3):
        expected = []
        for c in range(5):
            v = np.float32(0.0)
            for k in range(40):
                start = v * decay
                v = start + drive[n, k, c]
                if v >= 1.0:
                    frac = min(max((1.0 - start) / drive[n, k, c], 0.0), 1.0)
                    expected.append(((k + frac) * cfg.hop_ms / 1000.0, c))
                    v -= np.float32(1.0)
        times, units = got[n]
        order = np.lexsort((times, units))
        ref = sorted(expected, key=lambda e: (e[1], e[0]))
        np.testing.assert_array_equal(units[order], [c for _, c in ref])
        np.testing.assert_allclose(times[order], [t for t, _ in ref], rtol=1e-5, atol=1e-7)


def test_espeak_synthesises_english_and_german_words():
    synth = synth_shd.EspeakSynth()
    seven = synth.say("seven", "en+m3", rate=120, pitch=50, pitch_range=50, seed=1)
    fuenf = synth.say("fünf", "de+f2", rate=120, pitch=50, pitch_range=50, seed=1)
    for audio in (seven, fuenf):
        assert 0.2 < len(audio) / synth.sample_rate < 1.5 and np.abs(audio).max() > 0.05
    with pytest.raises(ValueError, match="no voice"):
        synth.say("x", "xx+nonexistent", 120, 50, 50, 1)


@pytest.fixture(scope="module")
def tiny_default(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return str(root), shd_default.build_shd_default(str(root), TINY, workers=2)


def test_tiny_default_is_shd_format_with_held_out_speakers(tiny_default):
    _, folder = tiny_default
    train = shd.read_shd(os.path.join(folder, "shd_train.h5"))
    test = shd.read_shd(os.path.join(folder, "shd_test.h5"))
    assert train.num_samples == 40 and test.num_samples == 20
    np.testing.assert_array_equal(np.sort(train.labels), np.repeat(np.arange(20), 2))
    assert set(train.speakers.tolist()) == {0, 1} and set(test.speakers.tolist()) == {2}
    counts = np.diff(train.offsets)
    assert 300 < np.median(counts) < 30000  # "a few thousand" per digit, order of magnitude
    assert [n for n in os.listdir(os.path.dirname(folder)) if n.startswith(".tmp")] == []


def test_generation_is_deterministic_and_cached(tiny_default, tmp_path):
    root, folder = tiny_default
    mtime = os.path.getmtime(os.path.join(folder, "shd_train.h5"))
    assert shd_default.build_shd_default(root, TINY) == folder  # cache hit, no rebuild
    assert os.path.getmtime(os.path.join(folder, "shd_train.h5")) == mtime
    again = shd_default.build_shd_default(str(tmp_path), TINY, workers=1)
    a = shd.read_shd(os.path.join(folder, "shd_test.h5"))
    b = shd.read_shd(os.path.join(again, "shd_test.h5"))
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.units, b.units)
    assert TINY.key() != synth_shd.SynthConfig().key()


def test_load_falls_back_to_default_only_without_a_data_dir(tiny_default, monkeypatch, tmp_path):
    _, folder = tiny_default
    monkeypatch.setattr(shd_default, "build_shd_default", lambda data_dir=None: folder)
    monkeypatch.delenv("ELM_DATA_DIR", raising=False)
    with pytest.warns(UserWarning, match="shd-default"):
        ds = data.load("shd_adding", bin_ms=10)
    assert ds.info["source"] == "shd-default" and ds.info["num_classes"] == 19
    assert "no data directory" in ds.info["fallback"] and "zenkelab" in ds.info["fallback"]
    # A named directory without the files is an error, not a silent swap to the default.
    with pytest.raises(data.DataNotFoundError, match="shd_adding_default"):
        data.load("shd_adding", data_dir=str(tmp_path), bin_ms=10)
    # Forcing the default ignores real files that are present.
    shd.write_shd(tmp_path / "shd_train.h5", [np.array([0.1])] * 10, [np.array([1])] * 10, [1] * 10)
    shd.write_shd(tmp_path / "shd_test.h5", [np.array([0.1])] * 3, [np.array([1])] * 3, [2] * 3)
    forced = data.load("shd_default", data_dir=str(tmp_path), bin_ms=10)
    assert forced.info["source"] == "shd-default" and forced.info["fallback"] is None
    real = data.load("shd", data_dir=str(tmp_path), bin_ms=10)
    assert real.info["source"] == "shd" and real.num_examples("test") == 3


def test_audio_to_shd_reads_fsdd_names_and_encodes(tmp_path):
    wav_dir = tmp_path / "wav"
    wav_dir.mkdir()
    for digit, speaker, freq in [(3, "ann", 300.0), (7, "bob", 2000.0), (3, "bob", 300.0)]:
        audio = (tone(freq, 0.4, 8000) * 32767).astype(np.int16)
        scipy.io.wavfile.write(wav_dir / f"{digit}_{speaker}_0.wav", 8000, audio)
    summary = audio_to_shd.convert(str(wav_dir), str(tmp_path / "out.h5"), workers=1)
    assert summary["num_samples"] == 3 and summary["speakers"] == ["ann", "bob"]
    out = shd.read_shd(tmp_path / "out.h5")
    np.testing.assert_array_equal(out.labels, [3, 3, 7])  # sorted file names
    np.testing.assert_array_equal(out.speakers, [0, 1, 1])
    direct = cochlea.encode(audio_to_shd.read_wav(str(wav_dir / "7_bob_0.wav"))[0], 8000)
    np.testing.assert_allclose(out.sample(2)[0], direct[0])
    (wav_dir / "notes.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="notes.wav.*FSDD naming"):
        audio_to_shd.convert(str(wav_dir), str(tmp_path / "bad.h5"), workers=1)
    assert not (tmp_path / "bad.h5").exists()
