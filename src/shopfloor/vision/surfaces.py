"""Synthetic steel and ceramic surfaces with scratches, spots and cracks, for the demo and the tests.

The real surface sets (NEU, magnetic tile) may not ship with the package, so the demo draws its
own: a brushed, grainy surface under uneven light, and three defect kinds with pixel masks. A
defect stands a few tens of grey levels out of grain of about 5: plain to a person who looks,
not to a fixed threshold. Everything follows from the seed; 300 images of 128 x 128 take about
a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from shopfloor.errors import BadOption

DEFECTS = ("crack", "scratch", "spot")
MIN_SIZE = 32


def surface(rng: np.random.Generator, size: int = 128, defect: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One grayscale surface, uint8 [size, size], and its defect mask, bool [size, size] (all False when good)."""
    if defect not in (None, "good", *DEFECTS):
        raise BadOption(f"unknown defect {defect!r}; choose one of {', '.join(DEFECTS)} or None for a good surface")
    image = _good_surface(rng, size)
    if defect in (None, "good"):
        return _grey(image), np.zeros((size, size), dtype=bool)
    shape, mask, darkness = _DRAW[defect](rng, size)
    return _grey(image - darkness * shape), mask


def write_defect_classes(out_dir, per_class: int = 60, size: int = 128, seed: int = 0) -> Path:
    """Class folders crack/, scratch/, spot/ of `per_class` PNG images each, for defect classification."""
    _check(size, MIN_SIZE, "size")
    _check(per_class, 1, "per_class")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    for defect in DEFECTS:
        folder = out / defect
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _save(surface(rng, size, defect)[0], folder / f"{defect}_{i:03d}.png")
    return out


def write_inspection_set(out_dir, train_good: int = 120, test_good: int = 30, test_per_defect: int = 15,
                         size: int = 128, seed: int = 0) -> Path:
    """The MVTec layout: train/good, test/good, test/<defect> and ground_truth/<defect>/<name>_mask.png (0/255)."""
    _check(size, MIN_SIZE, "size")
    _check(train_good, 1, "train_good")
    _check(test_good, 0, "test_good")
    _check(test_per_defect, 0, "test_per_defect")
    out = Path(out_dir)
    # one stream per part, so that a longer train set leaves the test images as they were
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    parts = [("train", "good", train_good, train_rng), ("test", "good", test_good, test_rng)]
    parts += [("test", defect, test_per_defect, test_rng) for defect in DEFECTS]
    for part, kind, count, rng in parts:
        folder = out / part / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, mask = surface(rng, size, kind)
            _save(image, folder / f"{i:03d}.png")
            if kind != "good":
                truth = out / "ground_truth" / kind
                truth.mkdir(parents=True, exist_ok=True)
                _save(mask.astype(np.uint8) * 255, truth / f"{i:03d}_mask.png")
    return out


def _good_surface(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float grey levels: base level, uneven light, brushed streaks and fine grain."""
    level = rng.uniform(110, 145)  # parts differ a little in brightness, as under a real ring light
    light = _resized(rng.normal(0, 7, (4, 4)), (size, size), Image.Resampling.BICUBIC)
    # brushing: noise smeared along the grinding direction (horizontal or vertical)
    stretch = int(rng.integers(10, 24))
    short = (max(1, size // stretch), size)
    streaks = _resized(rng.normal(0, 1, short[::-1]), (size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        streaks = streaks.T
    streaks *= rng.uniform(2.0, 4.0) / max(float(streaks.std()), 1e-6)
    grain = rng.normal(0, rng.uniform(4.0, 6.0), (size, size))
    return level + light + streaks + grain


def _scratch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A thin straight or slightly bowed line, bright (polished) or dark (a groove)."""
    length = rng.uniform(0.35, 0.8) * size
    angle = rng.uniform(0, math.pi)
    centre = rng.uniform(0.3, 0.7, 2) * size
    along, across = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    t = np.linspace(-0.5, 0.5, 25)[:, None]
    bow = rng.uniform(-0.08, 0.08) * length
    points = centre + t * length * along + (1 - 4 * t**2) * bow * across
    width = int(rng.integers(1, 3))
    shape, mask = _drawn([points], size, width, blur=0.5)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return shape, mask, sign * rng.uniform(28, 48)


def _spot(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A dark round blob with a soft edge (a pit, a stain), 4 to 15 pixels across."""
    radius = rng.uniform(2.0, 7.5)
    cx, cy = rng.uniform(radius + 3, size - radius - 3, 2)
    aspect = rng.uniform(0.75, 1.3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    distance = np.hypot((xx - cx) / aspect, (yy - cy) * aspect)
    shape = 1 / (1 + np.exp((distance - radius) / rng.uniform(0.7, 1.3)))
    return shape, distance <= radius + 0.5, rng.uniform(32, 60)


def _crack(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A dark jagged line from a random walk that keeps a main direction, sometimes with a branch."""
    heading = rng.uniform(0, 2 * math.pi)
    main = _walk(rng, rng.uniform(0.25, 0.75, 2) * size, heading, int(rng.integers(30, 60)), size)
    lines = [main]
    if rng.random() < 0.6 and len(main) > 8:
        fork = main[int(rng.integers(len(main) // 4, 3 * len(main) // 4))]
        turn = rng.uniform(0.5, 1.1) * (1 if rng.random() < 0.5 else -1)
        lines.append(_walk(rng, fork, heading + turn, len(main) // 3, size))
    shape, mask = _drawn(lines, size, width=int(rng.integers(1, 3)), blur=0.6)
    return shape, mask, rng.uniform(30, 52)


def _walk(rng: np.random.Generator, start: np.ndarray, heading: float, steps: int, size: int) -> np.ndarray:
    points, deviation = [np.asarray(start, dtype=np.float64)], 0.0
    for _ in range(steps):
        deviation = 0.6 * deviation + rng.normal(0, 0.55)  # jagged, but pulled back to the main direction
        step = 1.8 * np.array([math.cos(heading + deviation), math.sin(heading + deviation)])
        point = points[-1] + step
        if not (1 <= point[0] <= size - 2 and 1 <= point[1] <= size - 2):
            break
        points.append(point)
    return np.array(points)


def _drawn(lines: list[np.ndarray], size: int, width: int, blur: float) -> tuple[np.ndarray, np.ndarray]:
    """Polylines drawn at full strength and softened a little; the mask is the line grown by one pixel."""
    canvas = Image.new("L", (size, size))
    pen = ImageDraw.Draw(canvas)
    for points in lines:
        if len(points) > 1:
            pen.line([tuple(p) for p in points], fill=255, width=width, joint="curve")
    mask = np.asarray(canvas.filter(ImageFilter.MaxFilter(3))) > 0
    shape = np.asarray(canvas.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float64)
    return shape / max(float(shape.max()), 1.0), mask


def _resized(values: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(values.astype(np.float32)).resize(size, resample), dtype=np.float64)


def _grey(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _save(values: np.ndarray, path: Path) -> None:
    # Not artifacts.atomic_write: a generated image set is made whole before anything reads it, and a picture
    # half-written by a killed run is skipped by the folder readers as truncated, with a warning naming it.
    Image.fromarray(values).save(path)


def _check(value: int, least: int, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        raise BadOption(f"{name} must be a whole number >= {least}, got {value!r}")


_DRAW = {"crack": _crack, "scratch": _scratch, "spot": _spot}
