"""Decoding inspection images for the networks: any common format and bit depth, resized or tiled.

Cameras on the line write 8- and 16-bit grayscale, RGB, palette and even 1-bit images, from
thumbnails to line-scan panoramas. Everything comes out as float32 [channels, H, W] with grey
levels 0..255. Resizing happens inside PIL before any float array exists, so a 10,000 x 10,000
image costs its decoded bytes, never four times that, and a JPEG is even decoded at reduced scale.
Large images with small defects are cut into overlapping tiles at native resolution instead
(`read_tiles`); the heatmaps of the tiles go back together with `stitch`. Parts that are not square
are cut the same way into tiles as long as their shorter side, so that the network sees them at
its resolution without squashing (`read_tiles` with no tile size, `view_size`).

Pixels are read as stored: EXIF orientation is ignored, so that masks and tile boxes line up with
the pixel grid the camera wrote.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from shopfloor.errors import BadMask, BadOption, ImageUnreadable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 250_000_000  # line-scan panoramas reach a few hundred MP; above this a read is more likely a mistake
MIN_TILE = 8

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": how some PIL versions and TIFFs hold 16-bit grey
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
_RESAMPLE = Image.Resampling.BILINEAR  # antialiased: PIL widens the filter when it shrinks
_REDUCING_GAP = 3.0  # reduce() by whole factors first, bilinear for the last >= 3x: indistinguishable, much faster

_guard = threading.Lock()
_readers = 0
_pil_limit: int | None = None


def read_image(path, channels: int, size: int | None = None) -> np.ndarray:
    """Float32 [channels, H, W], grey levels 0..255; with `size`, resized to size x size inside PIL first."""
    _check_channels(channels)
    if size is not None:
        _check_at_least(size, 1, "size")
    path = Path(path)
    with _opened(path) as image:
        if size is not None:
            # JPEG decodes at 1/2, 1/4 or 1/8 scale almost for free, never below the size asked for
            image.draft("L" if channels == 1 else "RGB", (size, size))
        image, scale = _grey_levels(image, channels, path)
        if size is not None:
            image = _resize(image, (size, size))
        return _array(image, channels, scale)  # inside: closing the file destroys an image not converted


def image_size(path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding pixels."""
    with _opened(Path(path), check_size=False) as image:
        return image.size


def image_problem(path) -> str | None:
    """Why `path` cannot be used as an image, or None when it looks fine.

    Cheap enough for whole folders: the suffix, PIL's header, the size limit and `verify()` (which
    checks PNG checksums). A JPEG must also end with its end-of-image marker: a file cut short by
    an interrupted copy passes every header check and fails only when the network reads it.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"a {path.suffix} file, not an image" if path.suffix else "no suffix, not an image"
    try:
        with _opened(path) as image:
            jpeg = image.format in ("JPEG", "MPO")
            image.verify()
    except ImageUnreadable as err:
        return err.reason
    if jpeg and _cut_short(path):
        return "truncated: the JPEG has no end-of-image marker"
    return None


def tile_boxes(width: int, height: int, tile: int) -> np.ndarray:
    """Boxes (left, top, right, bottom) of tile x tile crops covering the image, neighbours overlapping >= 1/8.

    The last row and column end at the image's edge; a side shorter than a tile gets one crop of its
    whole length. Rows of the result run left to right, then top to bottom.
    """
    _check_at_least(tile, MIN_TILE, "tile")
    lefts, tops = _starts(width, tile), _starts(height, tile)
    across, down = min(tile, width), min(tile, height)
    return np.array([(x, y, x + across, y + down) for y in tops for x in lefts], dtype=np.int64)


def read_tiles(path, channels: int, tile: int | None, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Tiles [N, channels, size, size] float32 cut at native resolution, their boxes [N, 4] and (width, height).

    For large images with small defects: a 2-pixel scratch on a 8,000-pixel frame vanishes when the
    whole frame is shrunk to the network's input, but not in a 512-pixel tile shrunk to 256.
    `tile` None: tiles as long as the image's shorter side, so a part of any shape is seen at the
    network's size with its aspect ratio kept (a square image is one tile: the whole image).
    """
    _check_channels(channels)
    _check_at_least(size, 1, "size")
    path = Path(path)
    with _opened(path) as image:
        image, scale = _grey_levels(image, channels, path)  # stays in PIL: 1 or 2 bytes a pixel, not 4
        width, height = image.size
        boxes = tile_boxes(width, height, tile or min(width, height))
        tiles = np.empty((len(boxes), channels, size, size), dtype=np.float32)
        for i, box in enumerate(boxes):
            tiles[i] = _array(_resize(image.crop(tuple(int(v) for v in box)), (size, size)), channels, scale)
    return tiles, boxes, (width, height)


def stitch(maps, boxes, image_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """One heatmap [h, w] for out_size (w, h) from per-tile maps [N, size, size], the maximum where tiles overlap.

    `out_size` is a reduced resolution of the original (width, height), which keeps memory bounded for
    huge frames. The maximum, not the mean, because a defect seen in one tile must not be diluted by
    the neighbour that only shows its edge.
    """
    maps, boxes = np.asarray(maps, dtype=np.float32), np.asarray(boxes)
    if maps.ndim != 3 or boxes.ndim != 2 or boxes.shape[1] != 4 or len(maps) != len(boxes) or not len(maps):
        raise ValueError(f"stitch needs maps [N, h, w] and boxes [N, 4] with the same N > 0, got {maps.shape} "
                         f"and {boxes.shape}")
    (width, height), (out_w, out_h) = image_size, out_size
    across, down = out_w / width, out_h / height
    canvas = np.full((out_h, out_w), -np.inf, dtype=np.float32)
    for heat, (left, top, right, bottom) in zip(maps, boxes, strict=True):
        x0, x1 = _span(left * across, right * across, out_w)
        y0, y1 = _span(top * down, bottom * down, out_h)
        patch = np.asarray(Image.fromarray(np.ascontiguousarray(heat)).resize((x1 - x0, y1 - y0), _RESAMPLE))
        np.maximum(canvas[y0:y1, x0:x1], patch, out=canvas[y0:y1, x0:x1])
    uncovered = np.isneginf(canvas)
    if uncovered.any():  # only when the boxes do not cover the image: show no evidence there
        canvas[uncovered] = maps.min()
    return canvas


def view_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of an image scaled so that its shorter side is `size`: the resolution at which a
    network that reads tiles as long as the shorter side sees the image, and its heatmaps' size."""
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_mask(path, width: int, height: int) -> np.ndarray:
    """Bool [height, width], True where the mask is > 0 (a defect); the mask must match its image's size."""
    path = Path(path)
    with _opened(path) as mask:
        if mask.size != (width, height):
            raise BadMask(f"mask {path} is {mask.size[0]} x {mask.size[1]} pixels but its image is {width} x {height}; "
                          "a mask must match its image pixel for pixel")
        mask.load()
        if mask.mode in ("P", "PA"):
            mask = mask.convert("RGBA")  # palette index 0 need not be black
        values = np.asarray(mask)
    if values.ndim == 3:  # colour masks: a defect wherever any colour is on; alpha is not a colour
        values = values[..., :3] if values.shape[2] >= 3 else values[..., :1]
        return (values > 0).any(axis=2)
    return values > 0


@contextmanager
def _own_size_check() -> Iterator[None]:
    """Lift PIL's decompression-bomb guard while shopfloor reads; `_check_pixels` takes its place.

    PIL warns above 89 megapixels and refuses 179, less than line-scan cameras deliver. Its limit is
    a module global, so it is lifted only while at least one shopfloor read runs (counted, for threads)
    and restored after the last; our check reads the size from the header before any pixel is decoded.
    """
    global _readers, _pil_limit
    with _guard:
        if _readers == 0:
            _pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        _readers += 1
    try:
        yield
    finally:
        with _guard:
            _readers -= 1
            if _readers == 0:
                Image.MAX_IMAGE_PIXELS = _pil_limit


@contextmanager
def _opened(path: Path, check_size: bool = True) -> Iterator[Image.Image]:
    """The open image; PIL's many exceptions come out as ImageUnreadable naming the file."""
    with _own_size_check():
        try:
            with Image.open(path) as image:
                if check_size:
                    _check_pixels(image, path)
                yield image
        except FileNotFoundError:
            raise _unreadable(path, "no such file") from None
        except UnidentifiedImageError:
            raise _unreadable(path, "not an image PIL can read: unknown format or damaged header") from None
        except _PIL_ERRORS as err:
            raise _unreadable(path, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from None


def _unreadable(path: Path, reason: str) -> ImageUnreadable:
    error = ImageUnreadable(f"{path} cannot be read as an image: {reason}")
    error.reason = reason  # for folder listings, which name the file themselves
    return error


def _check_pixels(image: Image.Image, path: Path) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        reason = (f"it is {width} x {height} pixels ({width * height / 1e6:.3g} megapixels), more than the "
                  f"{MAX_PIXELS / 1e6:.3g} megapixels shopfloor reads; cut it into parts or scale it down")
        raise _unreadable(path, reason)


def _cut_short(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(max(0, os.fstat(handle.fileno()).st_size - 1024))
        return b"\xff\xd9" not in handle.read()  # some writers pad after the marker, so not just the last 2 bytes


def _grey_levels(image: Image.Image, channels: int, path: Path) -> tuple[Image.Image, float]:
    """The loaded image in "L", "RGB" or a 16-bit mode, and the factor that takes its values to 0..255."""
    image.load()
    if image.mode in _SIXTEEN_BIT:
        # by the type's range, not per image: a dark frame must stay dark. Kept at 16 bits through the
        # resize, so that small contrasts survive; "I;16B" has no resize of its own
        return (image if image.mode in ("I;16", "I") else image.convert("I")), 1 / 257
    if image.mode == "F":
        raise _unreadable(path, "32-bit floating-point pixels have no known grey-level range; save it as 8 or 16 bit")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # a palette with transparency warns when converted directly
    if image.mode not in ("1", "L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB ... have no direct route to "L"
    target = "L" if channels == 1 else "RGB"  # RGBA to RGB drops alpha; RGB to L is ITU-R 601 luminance
    return (image if image.mode == target else image.convert(target)), 1.0


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    gap = None if image.mode.startswith("I;16") else _REDUCING_GAP  # PIL cannot reduce() 16-bit images
    return image.resize(size, _RESAMPLE, reducing_gap=gap)


def _array(image: Image.Image, channels: int, scale: float) -> np.ndarray:
    values = np.asarray(image, dtype=np.float32)
    if scale != 1.0:
        values = np.clip(values * np.float32(scale), 0, 255)
    if values.ndim == 2:
        return np.ascontiguousarray(np.repeat(values[None], channels, axis=0))
    return np.ascontiguousarray(values.transpose(2, 0, 1))


def _starts(length: int, tile: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - math.ceil(tile / 8)  # a defect on a seam is whole in at least one tile when it is < tile/8
    count = math.ceil((length - tile) / stride) + 1
    # whole-number spread: steps differ by at most one pixel and none exceeds the stride
    return [i * (length - tile) // (count - 1) for i in range(count)]


def _span(start: float, end: float, limit: int) -> tuple[int, int]:
    first = min(int(round(start)), limit - 1)
    return first, min(max(int(round(end)), first + 1), limit)


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise BadOption(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def _check_at_least(value: int, least: int, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        raise BadOption(f"{name} must be a whole number of pixels >= {least}, got {value!r}")
