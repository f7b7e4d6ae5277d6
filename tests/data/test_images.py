"""Decoding images: every mode and bit depth, resizing inside PIL, size limits, tiles, stitching, masks."""

from __future__ import annotations

import re
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, JpegImagePlugin

from shopfloor.errors import BadMask, BadOption, DataFileError, ImageUnreadable
from shopfloor.vision import images
from shopfloor.vision.images import image_problem, image_size, read_image, read_mask, read_tiles, stitch, tile_boxes

GREY = (np.arange(12 * 16).reshape(12, 16) * 4 % 256).astype(np.uint8)  # 12 rows x 16 columns, all levels apart


def colour() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)


def save(path, image: Image.Image, **options):
    image.save(path, **options)
    return path


def read_quietly(*args, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_image(*args, **kwargs)


# --- modes and bit depths -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["grey.png", "grey.bmp", "grey.tif"])
def test_8bit_grayscale_is_read_exactly_and_replicated_for_rgb(tmp_path, name):
    path = save(tmp_path / name, Image.fromarray(GREY))
    one, three = read_quietly(path, 1), read_quietly(path, 3)
    assert one.dtype == np.float32 and one.shape == (1, 12, 16)
    np.testing.assert_array_equal(one[0], GREY)
    assert three.shape == (3, 12, 16)
    for band in three:
        np.testing.assert_array_equal(band, GREY)


@pytest.mark.parametrize("name", ["rgb.png", "rgb.bmp", "rgb.tiff"])
def test_rgb_is_channels_first_and_luminance_for_one_channel(tmp_path, name):
    pixels = colour()
    path = save(tmp_path / name, Image.fromarray(pixels))
    np.testing.assert_array_equal(read_quietly(path, 3), pixels.transpose(2, 0, 1))
    luminance = pixels @ np.array([0.299, 0.587, 0.114])
    assert np.abs(read_quietly(path, 1)[0] - luminance).max() <= 1.0


def test_alpha_is_dropped_not_composited(tmp_path):
    pixels = colour()
    rgba = np.dstack([pixels, np.zeros((12, 16), np.uint8)])  # fully transparent: composited it would be black
    path = save(tmp_path / "rgba.png", Image.fromarray(rgba))
    np.testing.assert_array_equal(read_quietly(path, 3), pixels.transpose(2, 0, 1))
    grey_alpha = save(tmp_path / "la.png", Image.fromarray(np.dstack([GREY, np.zeros_like(GREY)])))
    np.testing.assert_array_equal(read_quietly(grey_alpha, 1)[0], GREY)


def test_palette_images_with_and_without_transparency(tmp_path):
    picture = Image.fromarray(colour()).quantize(8)
    path = save(tmp_path / "palette.png", picture)
    expected = np.asarray(picture.convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(read_quietly(path, 3), expected)
    transparent = save(tmp_path / "transparent.png", picture, transparency=0)
    np.testing.assert_array_equal(read_quietly(transparent, 3), expected)  # and no warning from PIL


def test_1bit_images_become_0_and_255(tmp_path):
    path = save(tmp_path / "one.png", Image.fromarray(GREY > 128))
    assert Image.open(path).mode == "1"
    np.testing.assert_array_equal(read_quietly(path, 1)[0], np.where(GREY > 128, 255, 0))


def sixteen_bit(values: np.ndarray, big_endian: bool = False) -> Image.Image:
    if big_endian:
        return Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes())
    return Image.fromarray(values.astype(np.uint16))


@pytest.mark.parametrize("name, big_endian, mode", [("png16.png", False, "I;16"), ("tif16.tif", False, "I;16"),
                                                    ("tif16b.tif", True, "I;16B")])
def test_16bit_is_scaled_by_the_type_range(tmp_path, name, big_endian, mode):
    path = save(tmp_path / name, sixteen_bit(GREY.astype(np.uint16) * 257, big_endian))
    assert Image.open(path).mode == mode
    np.testing.assert_allclose(read_quietly(path, 1)[0], GREY, atol=1e-3)
    np.testing.assert_allclose(read_quietly(path, 3)[2], GREY, atol=1e-3)
    # a dark frame stays dark: no stretching to the image's own range
    dark = save(tmp_path / f"dark-{name}", sixteen_bit(np.full((12, 16), 1028), big_endian))
    np.testing.assert_allclose(read_quietly(dark, 1), 4.0, atol=1e-3)


def test_32bit_integer_images_are_read_as_16bit_grey(tmp_path):
    path = save(tmp_path / "int.tif", Image.fromarray(GREY.astype(np.int32) * 257))
    assert Image.open(path).mode == "I"
    np.testing.assert_allclose(read_quietly(path, 1)[0], GREY, atol=1e-3)


def test_16bit_keeps_its_precision_through_the_resize(tmp_path):
    stripes = np.where(np.arange(16) % 2, 101, 100)[None].repeat(16, 0) * 257  # 100 and 101 in turn
    path = save(tmp_path / "fine.png", sixteen_bit(stripes))
    resized = read_quietly(path, 1, size=8)
    np.testing.assert_allclose(resized[:, :, 1:-1], 100.5, atol=0.01)  # an 8-bit detour gives 100 or 101
    assert np.all(np.abs(resized - 100.5) < 0.1)  # the edge columns see one stripe more than the other


def test_float_images_are_refused_with_a_fix(tmp_path):
    path = save(tmp_path / "height.tif", Image.fromarray(np.ones((4, 4), np.float32)))
    with pytest.raises(ImageUnreadable, match=r"height\.tif.*floating-point.*8 or 16 bit"):
        read_image(path, 1)


def test_jpeg_and_cmyk_jpeg(tmp_path):
    smooth = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8) * 2
    path = save(tmp_path / "smooth.jpg", Image.fromarray(smooth), quality=95)
    assert np.abs(read_quietly(path, 1)[0] - smooth).mean() < 2
    cmyk = save(tmp_path / "cmyk.jpeg", Image.new("CMYK", (20, 10), (0, 255, 255, 0)))
    red = read_quietly(cmyk, 3)
    assert red.shape == (3, 10, 20) and red[0].mean() > 200 and red[1].mean() < 50


def test_size_resizes_to_a_square_and_keeps_levels(tmp_path):
    path = save(tmp_path / "rgb.png", Image.fromarray(colour()))
    small = read_quietly(path, 3, size=8)
    assert small.shape == (3, 8, 8) and small.dtype == np.float32
    assert 0 <= small.min() and small.max() <= 255
    flat = save(tmp_path / "flat.png", Image.new("L", (300, 100), 77))
    np.testing.assert_allclose(read_quietly(flat, 1, size=32), 77, atol=0.5)
    np.testing.assert_allclose(read_quietly(flat, 1, size=500), 77, atol=0.5)  # enlarging works too


def test_bad_arguments_are_options_errors(tmp_path):
    path = save(tmp_path / "grey.png", Image.fromarray(GREY))
    with pytest.raises(BadOption, match="channels must be 1 .* or 3"):
        read_image(path, 2)
    with pytest.raises(BadOption, match="size"):
        read_image(path, 1, size=0)


# --- unreadable files -----------------------------------------------------------------------------------

def truncated(tmp_path, name: str, fmt: str):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    whole = save(tmp_path / f"whole-{name}", Image.fromarray(noise), format=fmt)
    cut = tmp_path / name
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return cut


@pytest.mark.parametrize("name, fmt", [("cut.jpg", "JPEG"), ("cut.png", "PNG")])
def test_truncated_files_raise_image_unreadable_naming_the_file(tmp_path, name, fmt):
    cut = truncated(tmp_path, name, fmt)
    with pytest.raises(ImageUnreadable, match=re.escape(name) + " cannot be read as an image: "):
        read_image(cut, 1)
    assert image_size(cut) == (64, 64)  # the header is intact: the size needs no pixels
    assert image_problem(cut) is not None


def test_text_and_missing_files_raise_image_unreadable(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("inspection notes, not a picture")
    with pytest.raises(ImageUnreadable, match=r"notes\.png cannot be read as an image: not an image PIL can read"):
        read_image(text, 1)
    with pytest.raises(ImageUnreadable, match=r"absent\.png.*no such file") as caught:
        read_image(tmp_path / "absent.png", 1)
    assert isinstance(caught.value, DataFileError)  # so that the CLI's exit-2 handling catches it


def test_image_problem_names_the_reason(tmp_path):
    good = save(tmp_path / "good.jpg", Image.fromarray(GREY))
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    (tmp_path / "text.png").write_text("hello")
    assert image_problem(good) is None
    assert image_problem(tmp_path / "table.csv") == "a .csv file, not an image"
    assert "not an image PIL can read" in image_problem(tmp_path / "text.png")
    assert "end-of-image marker" in image_problem(truncated(tmp_path, "cut.jpg", "JPEG"))
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(good.read_bytes() + b"\x00" * 100)  # some cameras pad after the end marker
    assert image_problem(padded) is None


# --- big images -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    """6000 x 6000 grayscale JPEG: smooth shading with a bright square, small on disk."""
    side = 6000
    ramp = np.linspace(40, 160, side, dtype=np.float32)
    pixels = (ramp[:, None] * 0.5 + ramp[None, :] * 0.5).astype(np.uint8)
    pixels[1000:1500, 4000:4500] = 250
    path = tmp_path_factory.mktemp("big") / "line-scan.jpg"
    Image.fromarray(pixels).save(path, quality=80)
    return path


def test_big_jpeg_is_decoded_reduced_and_never_a_full_size_float(big_jpeg, monkeypatch):
    scales = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        scales.append(original(self, mode, size))
        return scales[-1]

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    tracemalloc.start()
    small = read_image(big_jpeg, 1, size=224)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert small.shape == (1, 224, 224)
    assert peak < 8e6  # a full-size float32 copy would be 144 MB, a uint8 one 36 MB
    assert scales and scales[0] is not None and scales[0][1][2:] == (750, 750)  # decoded at 1/8 scale
    square = small[0, 1000 * 224 // 6000 + 2: 1500 * 224 // 6000 - 2, 4000 * 224 // 6000 + 2: 4500 * 224 // 6000 - 2]
    assert square.min() > 240  # the bright square is where it was


def test_tiles_of_a_big_jpeg_are_cut_from_pil_not_from_a_float_copy(big_jpeg):
    tracemalloc.start()
    tiles, boxes, size = read_tiles(big_jpeg, 1, tile=2048, size=32)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size == (6000, 6000)
    assert tiles.shape == (len(boxes), 1, 32, 32) and len(boxes) == 16
    assert peak < 8e6


def test_megapixel_limit_names_the_file_and_its_size(tmp_path, monkeypatch):
    path = save(tmp_path / "panorama.png", Image.new("L", (40, 30)))
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageUnreadable, match=r"panorama\.png.*40 x 30 pixels.*more than the 0\.001 megapixels"):
        read_image(path, 1)
    assert "40 x 30" in image_problem(path)
    assert image_size(path) == (40, 30)  # asking for the size is fine


def test_our_limit_replaces_pils_and_pils_comes_back(tmp_path, monkeypatch):
    path = save(tmp_path / "wide.png", Image.new("L", (100, 100), 9))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL alone would refuse 10,000 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_image(path, 1), 9)
        read_tiles(path, 1, tile=64, size=8)
    assert Image.MAX_IMAGE_PIXELS == 100
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)


# --- tiles and stitching --------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(width=st.integers(1, 3000), height=st.integers(1, 3000), tile=st.integers(8, 700))
def test_tile_boxes_cover_the_image_with_an_eighth_overlap(width, height, tile):
    boxes = tile_boxes(width, height, tile)
    for low, high, length in ((0, 2, width), (1, 3, height)):
        starts, ends = np.unique(boxes[:, low]), np.unique(boxes[:, high])
        assert starts[0] == 0 and ends[-1] == length  # the last row and column end at the edge
        assert np.all(ends - starts == min(tile, length))
        assert np.all(ends[:-1] - starts[1:] >= tile / 8)  # neighbours overlap by at least an eighth
    assert len(boxes) == len(np.unique(boxes[:, 0])) * len(np.unique(boxes[:, 1]))


def test_tile_must_be_at_least_eight_pixels():
    with pytest.raises(BadOption, match="tile"):
        tile_boxes(100, 100, 4)


def test_read_tiles_matches_crops_of_the_original(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    path = save(tmp_path / "plate.png", Image.fromarray(pixels))
    tiles, boxes, size = read_tiles(path, 3, tile=128, size=64)
    assert size == (300, 200) and tiles.shape == (len(boxes), 3, 64, 64) and tiles.dtype == np.float32
    assert len(boxes) == 3 * 2
    for tile, (left, top, right, bottom) in zip(tiles, boxes, strict=True):
        crop = Image.fromarray(pixels[top:bottom, left:right]).resize((64, 64), Image.Resampling.BILINEAR)
        np.testing.assert_allclose(tile, np.asarray(crop).transpose(2, 0, 1), atol=1)


def test_an_image_smaller_than_a_tile_is_one_tile(tmp_path):
    path = save(tmp_path / "small.png", Image.fromarray(GREY))
    tiles, boxes, size = read_tiles(path, 1, tile=64, size=16)
    assert tiles.shape == (1, 1, 16, 16) and boxes.tolist() == [[0, 0, 16, 12]] and size == (16, 12)


def test_16bit_tiles_are_scaled(tmp_path):
    path = save(tmp_path / "deep.tif", sixteen_bit(np.full((40, 50), 200 * 257)))
    tiles, _, _ = read_tiles(path, 3, tile=16, size=8)
    np.testing.assert_allclose(tiles, 200, atol=1e-3)


def test_stitch_takes_the_maximum_where_tiles_overlap():
    width, height = 300, 200
    boxes = tile_boxes(width, height, 128)
    values = np.arange(1, len(boxes) + 1, dtype=np.float32)[::-1].copy()  # the first tile is the hottest
    maps = np.ones((len(boxes), 16, 16), np.float32) * values[:, None, None]
    expected = np.zeros((height, width), np.float32)
    for value, (left, top, right, bottom) in zip(values, boxes, strict=True):
        expected[top:bottom, left:right] = np.maximum(expected[top:bottom, left:right], value)
    np.testing.assert_array_equal(stitch(maps, boxes, (width, height), (width, height)), expected)
    half = stitch(maps, boxes, (width, height), (150, 100))
    assert half.shape == (100, 150) and set(np.unique(half)) <= set(values)


def test_stitch_puts_a_hot_spot_back_where_it_was():
    width, height = 1000, 600
    boxes = tile_boxes(width, height, 256)
    maps = np.zeros((len(boxes), 32, 32), np.float32)
    target = (730, 410)  # (x, y) in original pixels
    for heat, (left, top, right, bottom) in zip(maps, boxes, strict=True):
        if left <= target[0] < right and top <= target[1] < bottom:
            heat[(target[1] - top) * 32 // (bottom - top), (target[0] - left) * 32 // (right - left)] = 1.0
    heat = stitch(maps, boxes, (width, height), (250, 150))
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(x * 4 - target[0]) <= 12 and abs(y * 4 - target[1]) <= 12


def test_stitch_rejects_maps_and_boxes_that_do_not_match():
    with pytest.raises(ValueError, match="same N"):
        stitch(np.zeros((2, 8, 8)), np.zeros((3, 4)), (10, 10), (5, 5))


# --- masks ----------------------------------------------------------------------------------------------

def test_masks_in_any_mode_are_true_above_zero(tmp_path):
    defect = np.zeros((12, 16), bool)
    defect[3:6, 4:9] = True
    grey = save(tmp_path / "grey_mask.png", Image.fromarray(defect.astype(np.uint8) * 255))
    faint = save(tmp_path / "faint_mask.png", Image.fromarray(defect.astype(np.uint8)))  # 0/1 masks exist too
    binary = save(tmp_path / "one_mask.png", Image.fromarray(defect))
    red = np.zeros((12, 16, 3), np.uint8)
    red[defect] = (1, 0, 0)  # would vanish in a luminance conversion
    coloured = save(tmp_path / "red_mask.png", Image.fromarray(red))
    palette = save(tmp_path / "palette_mask.png", Image.fromarray(red).quantize(2))
    for path in (grey, faint, binary, coloured, palette):
        mask = read_mask(path, 16, 12)
        assert mask.dtype == bool and mask.shape == (12, 16)
        np.testing.assert_array_equal(mask, defect, err_msg=path.name)


def test_a_mask_of_another_size_is_bad(tmp_path):
    path = save(tmp_path / "000_mask.png", Image.new("L", (30, 20)))
    with pytest.raises(BadMask, match=r"000_mask\.png is 30 x 20 pixels but its image is 32 x 20"):
        read_mask(path, 32, 20)


def test_reads_in_threads_restore_pils_limit(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    paths = [save(tmp_path / f"{i}.png", Image.fromarray(GREY)) for i in range(8)]
    before = Image.MAX_IMAGE_PIXELS
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: read_image(p, 1, size=8), paths * 5))
    assert len(results) == 40 and Image.MAX_IMAGE_PIXELS == before
