"""A Pathfinder-style generator: are the two markers joined by one dashed contour?

Written from the task's description (Linsley et al. 2018, "Learning long-range spatial
dependencies with horizontal gated recurrent units"; its Long Range Arena use, Tay et al. 2021),
not from the original code and not the LRA image files. Every image holds two target contours of
`num_segments` dashes and up to `num_distractors` shorter distractor contours; each contour is a
chain of straight dashes separated by gaps, turning by a random angle of at most `max_turn_deg`
between dashes. Two filled circular markers sit on contour ends: in a positive both sit on the
two ends of the first target, in a negative one sits on each target. Both labels draw the same
ink (two targets + distractors), so ink statistics carry no label information.

Connectivity is guaranteed on the rendered pixels, with `r = connect_radius(cfg)`: consecutive
dashes of a contour lie within Chebyshev distance 2r + 1 of each other, and every pixel of one
contour lies at Chebyshev distance >= 2r + 2 from every pixel of any other contour. So dilating
the ink (`image > 0`) with a (2r+1)-square and labelling 8-connected components puts the two
markers in one component exactly when the label is 1. Each dash takes the first of CANDIDATES
random turns that keeps it inside and off the pixels closed by the contours already drawn; a
target that cannot be grown is redrawn up to `max_attempts` times, then the whole image is
redrawn; a distractor gets DISTRACTOR_ATTEMPTS tries, then it is left out.

Shapes: n images, H = W = image_size, s dashes, p sample points per dash, q offsets across it.
Everything is vectorised over a chunk of images: one call draws one contour for every image that
still needs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

GENERATOR_VERSION = 1
DIFFICULTY_SEGMENTS = {"easy": 6, "medium": 9, "hard": 14}  # the original's contour lengths
MARKER_LEVEL = 255
SAMPLES_PER_PIXEL = 4  # dash sample points per pixel of length (anti-aliased by accumulation)
CHUNK = 512
CANDIDATES = 8  # random turns tried per dash
LOOKAHEAD = 2.0
DISTRACTOR_ATTEMPTS = 3  # a distractor that does not fit after these is left out


@dataclasses.dataclass(frozen=True)
class PathfinderConfig:
    """Parameters of the generator (all lengths in pixels, angles in degrees).

    image_size: H = W. num_segments: dashes per target contour. dash_length, dash_gap, dash_width:
    one dash, the gap to the next one, its width. max_turn_deg: largest turn between dashes
    (curvature). marker_radius: the markers' disc radius. num_distractors / distractor_segments:
    distractor contours per image and their dashes. dash_level: grey level of a fully covered
    dash pixel (markers are 255). max_attempts: redraws of a contour that does not fit.
    """

    image_size: int = 32
    num_segments: int = 14
    dash_length: float = 2.0
    dash_gap: float = 1.0
    dash_width: float = 0.5
    max_turn_deg: float = 30.0
    marker_radius: float = 1.5
    num_distractors: int = 5
    distractor_segments: int = 4
    dash_level: int = 191
    max_attempts: int = 5

    def __post_init__(self) -> None:
        positive_ints = ("image_size", "num_segments", "distractor_segments", "max_attempts")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"pathfinder {name}={value!r}; valid: a positive integer")
        if isinstance(self.num_distractors, bool) or not isinstance(self.num_distractors, int):
            raise ValueError(
                f"pathfinder num_distractors={self.num_distractors!r}; valid: int >= 0"
            )
        if self.num_distractors < 0:
            raise ValueError(f"pathfinder num_distractors={self.num_distractors!r}; valid: >= 0")
        for name in ("dash_length", "dash_gap", "marker_radius"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"pathfinder {name}={getattr(self, name)!r}; valid: > 0")
        if not 0 <= float(self.dash_width) < self.dash_length:
            raise ValueError(
                f"pathfinder dash_width={self.dash_width!r}; valid: 0 <= width < dash_length"
            )
        if not 0 <= float(self.max_turn_deg) <= 180:
            raise ValueError(f"pathfinder max_turn_deg={self.max_turn_deg!r}; valid: 0..180")
        if not 1 <= self.dash_level <= 255:
            raise ValueError(f"pathfinder dash_level={self.dash_level!r}; valid: 1..255")
        if self.image_size < 4 * (self.marker_radius + 2):
            raise ValueError(
                f"pathfinder image_size={self.image_size!r} is too small for marker_radius "
                f"{self.marker_radius}; valid: >= {math.ceil(4 * (self.marker_radius + 2))}"
            )

    def key(self) -> str:
        """Short hash of the generator version and every parameter (names the cache folder)."""
        text = json.dumps([GENERATOR_VERSION, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def preset(image_size: int, difficulty: str = "hard") -> PathfinderConfig:
    """The 32x32 (Pathfinder) or 128x128 (Path-X) parameters at a difficulty level.

    difficulty "easy" | "medium" | "hard": 6, 9 or 14 dashes per target contour (the original's
    levels); distractors have a third of that, and their number keeps the distractor ink
    roughly constant across levels (20 dashes at 32x32, 35 at 128x128). At 32x32 the turns reach
    60 degrees (two 14-dash targets 4 px apart rarely fit in 32x32 when straighter), at 128x128 30.
    """
    if difficulty not in DIFFICULTY_SEGMENTS:
        raise ValueError(
            f"pathfinder difficulty={difficulty!r}; valid: {', '.join(DIFFICULTY_SEGMENTS)}"
        )
    segments = DIFFICULTY_SEGMENTS[difficulty]
    distractor_segments = max(1, segments // 3)
    if image_size == 32:
        return PathfinderConfig(32, segments, 2.0, 1.0, 0.5, 60.0, 1.5,
                                20 // distractor_segments, distractor_segments)  # fmt: skip
    if image_size == 128:
        return PathfinderConfig(128, segments, 5.0, 3.0, 1.5, 30.0, 3.0,
                                35 // distractor_segments, distractor_segments)  # fmt: skip
    raise ValueError(f"pathfinder image_size={image_size!r}; valid presets: 32, 128")


def connect_radius(cfg: PathfinderConfig) -> int:
    """Dilation radius r under which a contour's dashes join and different contours stay apart."""
    return max(1, math.ceil(cfg.dash_gap / 2))


def _disc_offsets(radius: float) -> np.ndarray:
    """Integer (dy, dx) offsets [k, 2] of the pixels within `radius` of a pixel centre."""
    reach = math.ceil(radius)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    keep = dy**2 + dx**2 <= radius**2
    return np.stack([dy[keep], dx[keep]], axis=-1)


def _free(excluded: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Whether every pixel of `pixels` [a, ..., k, 2] lies inside and off `excluded` [a, H, W]."""
    size = excluded.shape[-1]
    inside = np.all((pixels >= 0) & (pixels < size), axis=-1)
    clipped = np.clip(pixels, 0, size - 1)
    rows = np.arange(excluded.shape[0]).reshape((-1,) + (1,) * (pixels.ndim - 2))
    hit = excluded[rows, clipped[..., 0], clipped[..., 1]]
    return np.all(inside & ~hit, axis=-1)


def _dash_pattern(cfg: PathfinderConfig) -> tuple[np.ndarray, np.ndarray]:
    """Sample offsets along [p] and across [q] one dash."""
    p = max(2, math.ceil(cfg.dash_length * SAMPLES_PER_PIXEL) + 1)
    q = max(1, math.ceil(cfg.dash_width * SAMPLES_PER_PIXEL) + 1)
    along = np.linspace(0.0, cfg.dash_length, p)
    return along, np.linspace(-cfg.dash_width / 2, cfg.dash_width / 2, q)


def _grow(rng, excluded, segments, cfg, marker_start, marker_end):
    """One contour per image, grown dash by dash around the `excluded` pixels [a, H, W].

    Each dash takes the first of CANDIDATES random turns whose pixels are inside and free (so
    contours bend around what is already drawn). Returns the contour images [a, H, W] uint8,
    success flags [a] and the integer end points [a, 2, 2] (start, end; the marker centres).
    """
    a, size = excluded.shape[0], cfg.image_size
    disc = _disc_offsets(cfg.marker_radius)
    along, across = _dash_pattern(cfg)
    margin = cfg.marker_radius + 1.0
    starts = np.rint(rng.uniform(margin, size - 1 - margin, (a, CANDIDATES, 2))).astype(np.int64)
    start_pixels = starts[:, :, None, :] + np.where(marker_start[:, None, None, None], disc, 0)
    free = _free(excluded, start_pixels)
    alive = free.any(axis=1)
    start_pixel = starts[np.arange(a), free.argmax(axis=1)]
    position = start_pixel.astype(np.float64)
    # Head roughly towards the centre (long contours would otherwise mostly leave the image).
    to_centre = (size - 1) / 2 - position
    theta = np.arctan2(to_centre[:, 0], to_centre[:, 1]) + rng.uniform(-1.0, 1.0, a) * np.pi / 2
    max_turn = np.deg2rad(cfg.max_turn_deg)
    dash_pixels = []
    for remaining in range(segments - 1, -1, -1):
        turn = theta[:, None] + rng.uniform(-max_turn, max_turn, (a, CANDIDATES))
        unit = np.stack([np.sin(turn), np.cos(turn)], axis=-1)  # [a, K, 2]
        normal = np.stack([unit[..., 1], -unit[..., 0]], axis=-1)
        points = (
            position[:, None, None, None, :]
            + along[None, None, :, None, None] * unit[:, :, None, None, :]
            + across[None, None, None, :, None] * normal[:, :, None, None, :]
        )
        pixels = np.rint(points).astype(np.int64).reshape(a, CANDIDATES, -1, 2)
        # Look ahead: the point LOOKAHEAD pitches on must still be inside (room to turn).
        reach = min(LOOKAHEAD, remaining) * (cfg.dash_length + cfg.dash_gap) + cfg.dash_length
        ahead = position[:, None, :] + reach * unit
        ok = _free(excluded, pixels) & np.all((ahead >= 0) & (ahead <= size - 1), axis=-1)
        alive &= ok.any(axis=1)
        pick = ok.argmax(axis=1)
        theta = turn[np.arange(a), pick]
        chosen_unit = unit[np.arange(a), pick]
        dash_pixels.append(pixels[np.arange(a), pick])
        end = position + cfg.dash_length * chosen_unit
        position = position + (cfg.dash_length + cfg.dash_gap) * chosen_unit
    ends = np.stack([start_pixel, np.rint(end)], axis=1)
    ends = ends.astype(np.int64)
    end_pixels = ends[:, 1, None, :] + np.where(marker_end[:, None, None], disc, 0)
    alive &= _free(excluded, end_pixels)
    pixels = np.concatenate(dash_pixels, axis=1)  # [a, s*p*q, 2], all inside where alive
    pixels = np.clip(pixels, 0, size - 1)
    index = (np.arange(a)[:, None] * size + pixels[..., 0]) * size + pixels[..., 1]
    hits = np.bincount(index.ravel(), minlength=a * size * size)
    # A pixel crossed along its full length by all q sample lines collects ~SAMPLES_PER_PIXEL * q.
    level = np.minimum(1.0, hits / (SAMPLES_PER_PIXEL * across.size)) * cfg.dash_level
    images = np.ceil(level).astype(np.uint8).reshape(a, size, size)
    for which, use in ((0, marker_start), (1, marker_end)):
        rows = np.flatnonzero(use & alive)
        centres = ends[rows, which]
        ys = np.clip(centres[:, None, 0] + disc[None, :, 0], 0, size - 1)
        xs = np.clip(centres[:, None, 1] + disc[None, :, 1], 0, size - 1)
        images[rows[:, None], ys, xs] = MARKER_LEVEL
    return images, alive, ends


def _chunk(rng: np.random.Generator, labels: np.ndarray, cfg: PathfinderConfig):
    """Images [n, H, W], marker centres [n, 2, 2] and success flags [n] for `labels` [n]."""
    n, size = labels.shape[0], cfg.image_size
    # Pixels within Chebyshev distance 2r + 1 of a drawn contour are closed to later ones.
    keep_out = np.ones((1, 4 * connect_radius(cfg) + 3, 4 * connect_radius(cfg) + 3), bool)
    images = np.zeros((n, size, size), np.uint8)
    excluded = np.zeros((n, size, size), bool)
    markers = np.zeros((n, 2, 2), np.int64)
    ok = np.ones(n, bool)
    positive = labels == 1
    plan = [("first", cfg.num_segments), ("second", cfg.num_segments)]
    plan += [("distractor", cfg.distractor_segments)] * cfg.num_distractors
    for role, segments in plan:
        todo = np.flatnonzero(ok)
        for _ in range(cfg.max_attempts if role != "distractor" else DISTRACTOR_ATTEMPTS):
            if todo.size == 0:
                break
            pos = positive[todo]
            start_marker = np.full(todo.size, role == "first")
            end_marker = pos if role == "first" else ~pos & (role == "second")
            cand, fits, ends = _grow(rng, excluded[todo], segments, cfg, start_marker, end_marker)
            chosen = todo[fits]
            images[chosen] = np.maximum(images[chosen], cand[fits])
            excluded[chosen] |= ndimage.binary_dilation(cand[fits] > 0, keep_out)
            if role == "first":
                markers[chosen, 0] = ends[fits, 0]
                markers[chosen[pos[fits]], 1] = ends[fits][pos[fits], 1]
            elif role == "second":
                markers[chosen[~pos[fits]], 1] = ends[fits][~pos[fits], 1]
            todo = todo[~fits]
        if role != "distractor":
            ok[todo] = False
    return images, markers, ok


def generate(
    cfg: PathfinderConfig, num_examples: int, seed: int | Sequence[int]
) -> dict[str, np.ndarray]:
    """`num_examples` images from `np.random.default_rng(seed)`, labels exactly balanced.

    Returns {"images" [n, H, W] uint8, "labels" [n] uint8 (1 = markers connected),
    "markers" [n, 2, 2] int16 (the two marker centre pixels, (y, x))}. Deterministic in
    (cfg, num_examples, seed).
    """
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples <= 0:
        raise ValueError(f"pathfinder num_examples={num_examples!r}; valid: a positive integer")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_examples) % 2).astype(np.uint8)
    size = cfg.image_size
    images = np.zeros((num_examples, size, size), np.uint8)
    markers = np.zeros((num_examples, 2, 2), np.int16)
    for begin in range(0, num_examples, CHUNK):
        todo = np.arange(begin, min(begin + CHUNK, num_examples))
        for _ in range(100):
            chunk_images, chunk_markers, ok = _chunk(rng, labels[todo], cfg)
            images[todo[ok]] = chunk_images[ok]
            markers[todo[ok]] = chunk_markers[ok]
            todo = todo[~ok]
            if todo.size == 0:
                break
        else:
            raise ValueError(
                f"pathfinder: two target contours of {cfg.num_segments} dashes rarely fit in "
                f"{size}x{size}; valid: fewer num_segments or a larger image_size"
            )
    return {"images": images, "labels": labels, "markers": markers}
