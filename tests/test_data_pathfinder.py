"""Pathfinder: the generator's labels against an independent connectivity check, its
determinism and cache, the grey-level binning, and the LRA folder reader on folders written here."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from elm_jax import data
from elm_jax.data.common import ChecksumError, DataCorruptError, DataNotFoundError
from elm_jax.data.pathfinder import tasks as pathfinder_tasks
from elm_jax.data.pathfinder.files import build_generated, read_generated
from elm_jax.data.pathfinder.synthetic import PathfinderConfig, connect_radius, generate, preset

TINY_SIZES = {"train": 12, "validation": 4, "test": 4}


def connected_by_ink(image: np.ndarray, first, second, radius: int) -> bool:
    """Whether two pixels lie in one 8-connected component of the ink dilated by `radius`."""
    ink = ndimage.binary_dilation(image > 0, np.ones((2 * radius + 1, 2 * radius + 1), bool))
    components, _ = ndimage.label(ink, np.ones((3, 3), bool))
    a, b = components[tuple(first)], components[tuple(second)]
    assert a > 0 and b > 0, "a marker lies off the ink"
    return bool(a == b)


@pytest.mark.parametrize(
    "size, difficulty, count, seeds",
    [(32, "hard", 100, (0, 1, 2)), (32, "easy", 100, (0, 1, 2)), (128, "hard", 25, (0, 1)),
     (128, "medium", 25, (3,))],
)  # fmt: skip
def test_labels_equal_marker_connectivity_in_rendered_image(size, difficulty, count, seeds):
    cfg = preset(size, difficulty)
    radius = connect_radius(cfg)
    for seed in seeds:
        out = generate(cfg, count, seed)
        assert out["images"].shape == (count, size, size) and out["images"].dtype == np.uint8
        for image, label, markers in zip(out["images"], out["labels"], out["markers"], strict=True):
            # The markers are found in the image itself: pixels at 255 (dashes are dimmer).
            discs, num_discs = ndimage.label(image == 255, np.ones((3, 3), bool))
            assert 1 <= num_discs <= 2 and all(discs[tuple(m)] > 0 for m in markers)
            assert connected_by_ink(image, markers[0], markers[1], radius) == bool(label)


def test_connectivity_check_sees_a_cut_contour():
    # The check is not vacuous: erasing a band of a positive's ink around its contour's middle
    # disconnects markers that were connected.
    cfg = preset(32, "easy")
    out = generate(cfg, 40, 5)
    radius = connect_radius(cfg)
    cut = 0
    for image, label, markers in zip(out["images"], out["labels"], out["markers"], strict=True):
        if not label:
            continue
        broken = image.copy()
        (y0, x0), (y1, x1) = markers
        yy, xx = np.mgrid[:32, :32]
        # Erase everything but two discs around the markers: nothing can join them.
        keep = ((yy - y0) ** 2 + (xx - x0) ** 2 <= 4) | ((yy - y1) ** 2 + (xx - x1) ** 2 <= 4)
        broken[~keep] = 0
        far = max(abs(y0 - y1), abs(x0 - x1)) > 2 * 2 + 2 * radius + 1
        if far:
            assert not connected_by_ink(broken, markers[0], markers[1], radius)
            cut += 1
    assert cut >= 5


def test_generator_is_deterministic_and_exactly_balanced():
    cfg = preset(32, "medium")
    first, again, other = generate(cfg, 64, 7), generate(cfg, 64, 7), generate(cfg, 64, 8)
    for key in ("images", "labels", "markers"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["images"], other["images"])
    assert int(first["labels"].sum()) == 32 and int(generate(cfg, 9, 1)["labels"].sum()) == 4
    # Both classes carry the same ink: two targets of the same length plus distractors.
    ink = (first["images"] > 0).sum(axis=(1, 2))
    positive = first["labels"] == 1
    assert abs(ink[positive].mean() - ink[~positive].mean()) < 0.15 * ink.mean()


@pytest.mark.parametrize(
    "field, value, match",
    [("image_size", 0, "image_size=0"), ("num_segments", 2.5, "num_segments=2.5"),
     ("dash_gap", 0.0, "dash_gap=0.0"), ("max_turn_deg", 200.0, "max_turn_deg=200.0"),
     ("num_distractors", -1, "num_distractors=-1"), ("dash_width", 3.0, "dash_width=3.0")],
)  # fmt: skip
def test_bad_generator_parameters_name_field_and_valid_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(PathfinderConfig(), **{field: value})


def test_bad_presets_and_counts_are_refused():
    with pytest.raises(ValueError, match="image_size=64; valid presets: 32, 128"):
        preset(64)
    with pytest.raises(ValueError, match="difficulty='extreme'; valid: easy, medium, hard"):
        preset(32, "extreme")
    with pytest.raises(ValueError, match="num_examples=0"):
        generate(preset(32), 0, 0)
    with pytest.raises(ValueError, match="fewer num_segments"):
        generate(dataclasses.replace(preset(32), num_segments=60, max_attempts=1), 2, 0)


def test_cache_holds_arrays_manifest_and_checksums(tmp_path):
    cfg = preset(32, "easy")
    folder = build_generated(str(tmp_path), cfg, TINY_SIZES, seed=3)
    manifest = json.loads((tmp_path / folder / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["sizes"] == TINY_SIZES
    assert manifest["config"]["num_segments"] == 6 and "not the LRA files" in manifest["dataset"]
    splits, _, records = read_generated(folder)
    np.testing.assert_array_equal(splits["test"][0], generate(cfg, 4, [3, 2])["images"])
    assert [r["sha256"] for r in records] == [manifest["files"][s]["sha256"] for s in TINY_SIZES]
    assert manifest["files"]["train"]["positives"] == 6
    rebuilt = build_generated(str(tmp_path / "again"), cfg, TINY_SIZES, seed=3)
    again = json.loads((tmp_path / rebuilt / "manifest.json").read_text())
    assert again["files"] == manifest["files"]  # same bytes, same sha256
    stamp = os.path.getmtime(os.path.join(folder, "train.npz"))
    assert build_generated(str(tmp_path), cfg, TINY_SIZES, seed=3) == folder
    assert os.path.getmtime(os.path.join(folder, "train.npz")) == stamp  # not rebuilt
    with open(os.path.join(folder, "validation.npz"), "r+b") as handle:
        handle.seek(40)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(ChecksumError, match="validation.npz: sha256"):
        read_generated(folder)


@pytest.mark.parametrize("name, levels, side", [("pathfinder32_easy_default", 16, 32),
                                                ("pathfinder128_easy_default", 8, 128)])  # fmt: skip
def test_default_names_feed_binned_grey_levels_one_hot(tmp_path, monkeypatch, name, levels, side):
    monkeypatch.setitem(pathfinder_tasks.DEFAULT_SIZES, side, TINY_SIZES)
    ds = data.load(name, data_dir=str(tmp_path))
    info = ds.info
    assert (info["source"], info["input_dim"]) == ("pathfinder-style", levels)
    assert info["seq_len"] == side * side and info["num_examples"] == TINY_SIZES
    assert info["stand_in_for"] == f"LRA pathfinder{side} (easy)" and info["fallback"] is None
    assert data.static_info(name) == {"task": "classification", "input_dim": levels,
                                      "num_classes": 2}  # fmt: skip
    folder = os.path.dirname(info["files"][0]["path"])
    with np.load(os.path.join(folder, "test.npz")) as arrays:
        grey, labels = arrays["images"].reshape(4, -1).astype(np.int64), arrays["labels"]
    expected = np.minimum(grey * levels // 256, levels - 1)  # row-major pixels
    batch = next(ds.eval_batches("test", 4))
    assert batch["inputs"].shape == (4, side * side, levels)
    np.testing.assert_array_equal(batch["inputs"].argmax(-1), expected)
    np.testing.assert_array_equal(batch["inputs"].sum(-1), 1.0)
    np.testing.assert_array_equal(batch["labels"], labels)
    assert expected.max() == levels - 1 and (expected == 0).mean() > 0.8  # markers, background


# --- the LRA release folders -----------------------------------------------------------------


def write_lra(root, size=32, folder="curv_contour_length_14", count=16, lines=None):
    """A tiny LRA-like folder; image i is black but pixel (0, 0) = 255 * label_i, last = 16 i."""
    base = root / "lra_release" / "lra_release" / f"pathfinder{size}" / folder
    (base / "metadata").mkdir(parents=True)
    labels = [(i * 7) % 3 == 0 for i in range(count)]
    meta = []
    for i, label in enumerate(labels):
        sub = base / "imgs" / str(i % 2)
        sub.mkdir(parents=True, exist_ok=True)
        image = np.zeros((size, size), np.uint8)
        image[0, 0] = 255 * label
        image[size - 1, size - 1] = 16 * i  # which image it was (grey level i)
        Image.fromarray(image).save(sub / f"sample_{i}.png")
        meta.append(f"imgs/{i % 2} sample_{i}.png {i} {int(label)} 0.5 x")
    half = count // 2
    (base / "metadata" / "0.npy").write_text("\n".join(lines or meta[:half]) + "\n")
    (base / "metadata" / "1.npy").write_text("\n".join(meta[half:]) + "\n")
    return base, labels


def test_lra_folder_is_read_with_labels_paired_to_their_images(tmp_path):
    base, labels = write_lra(tmp_path)
    ds = data.load("pathfinder32", data_dir=str(tmp_path))
    info = ds.info
    assert info["source"] == "lra-pathfinder" and info["difficulty"] == "hard"
    assert info["num_examples"] == {"train": 13, "validation": 2, "test": 1}
    assert [os.path.basename(f["path"]) for f in info["files"]] == ["0.npy", "1.npy"]
    seen = {}
    for split in ("train", "validation", "test"):
        tokens = ds.encode(split, np.arange(ds.num_examples(split))).argmax(-1)
        for row, label in zip(tokens, ds.labels(split), strict=True):
            assert (row[0] == 15) == bool(label)  # the label stays with its own image
            seen[int(row[-1])] = bool(label)
    assert seen == dict(enumerate(labels))  # every image once, across the three splits


def test_lra_difficulty_names_read_their_folders(tmp_path):
    write_lra(tmp_path, folder="curv_baseline")
    assert data.load("pathfinder32_easy", data_dir=str(tmp_path)).info["difficulty"] == "easy"
    with pytest.raises(DataNotFoundError, match="curv_contour_length_9/metadata"):
        data.load("pathfinder32_medium", data_dir=str(tmp_path))


def test_lra_missing_folder_names_paths_searched(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"pathfinder128: .*curv_contour_length_14"):
        data.load("pathfinder128", data_dir=str(tmp_path))


@pytest.mark.parametrize("damage, match", [
    ("bad_line", r"0.npy:2: 'imgs/0 sample_1.png'; valid"),
    ("missing_png", "sample_3.png: listed in the metadata but missing"),
    ("truncated_png", "sample_4.png: not a readable image"),
    ("wrong_size", r"sample_5.png: image of shape \(8, 8\); valid: 32x32"),
])  # fmt: skip
def test_lra_corrupt_files_raise_naming_them(tmp_path, damage, match):
    lines = None
    if damage == "bad_line":
        lines = ["imgs/0 sample_0.png 0 1", "imgs/0 sample_1.png"]
    base, _ = write_lra(tmp_path, lines=lines)
    if damage == "missing_png":
        os.remove(base / "imgs" / "1" / "sample_3.png")
    if damage == "truncated_png":
        path = base / "imgs" / "0" / "sample_4.png"
        path.write_bytes(path.read_bytes()[:30])
    if damage == "wrong_size":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(base / "imgs" / "1" / "sample_5.png")
    with pytest.raises(DataCorruptError, match=match):
        data.load("pathfinder32", data_dir=str(tmp_path))


def test_no_data_directory_falls_back_to_the_labelled_stand_in(tmp_path, monkeypatch):
    monkeypatch.delenv("ELM_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default cache lives under ~/.cache
    monkeypatch.setitem(pathfinder_tasks.DEFAULT_SIZES, 32, TINY_SIZES)
    with pytest.warns(UserWarning, match="generated Pathfinder-style stand-in"):
        ds = data.load("pathfinder32_medium")
    assert ds.info["source"] == "pathfinder-style" and "no data directory" in ds.info["fallback"]
    assert ds.info["files"][0]["path"].startswith(str(tmp_path / ".cache" / "elm_jax"))
