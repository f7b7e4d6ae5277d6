"""Augmentation: shapes and range kept, the input untouched, each option doing what it says, seeds repeat."""

from __future__ import annotations

import pytest
import torch

from shopfloor.errors import BadOption
from shopfloor.vision.augment import augment

OFF = {"flips": False, "rotations": False, "brightness": 0.0, "contrast": 0.0, "crop": 1.0}


def batch(size: int = 16, height: int = 12, width: int = 12, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(size, channels, height, width, generator=torch.Generator().manual_seed(seed)) * 255


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_and_range_are_kept_and_the_input_is_untouched():
    x = batch()
    before = x.clone()
    out = augment(x, seeded(), brightness=0.5, contrast=0.5, crop=0.6)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 255
    assert torch.equal(x, before)
    assert not torch.equal(out, x)


def test_same_seed_same_batch_other_seed_other_batch():
    x = batch()
    assert torch.equal(augment(x, seeded(3)), augment(x, seeded(3)))
    assert not torch.equal(augment(x, seeded(3)), augment(x, seeded(4)))


def test_everything_off_changes_nothing():
    x = batch()
    assert torch.equal(augment(x, seeded(), **OFF), x)


def test_flips_give_one_of_the_four_mirror_images():
    x = batch(64)
    out = augment(x, seeded(), **{**OFF, "flips": True})
    seen = set()
    for original, changed in zip(x, out, strict=True):
        variants = [original, original.flip(-1), original.flip(-2), original.flip(-1).flip(-2)]
        matches = [k for k, v in enumerate(variants) if torch.equal(v, changed)]
        assert matches
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_quarter_turns_for_square_images_only():
    x = batch(64)
    out = augment(x, seeded(), **{**OFF, "rotations": True})
    turns = set()
    for original, changed in zip(x, out, strict=True):
        matches = [k for k in range(4) if torch.equal(torch.rot90(original, k, dims=(-2, -1)), changed)]
        assert matches
        turns.add(matches[0])
    assert turns == {0, 1, 2, 3}
    wide = batch(8, height=10, width=14)
    assert torch.equal(augment(wide, seeded(), **{**OFF, "rotations": True}), wide)


def test_brightness_is_a_gain_per_image_within_bounds():
    x = batch(32) * 0.5 + 10  # away from the clamp
    out = augment(x, seeded(), **{**OFF, "brightness": 0.2})
    gain = out / x
    per_image = gain.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5)
    assert per_image.min() >= 0.8 - 1e-5 and per_image.max() <= 1.2 + 1e-5
    assert per_image[:, 0].std() > 0.05  # each image gets its own gain


def test_contrast_stretches_about_the_mean():
    x = batch(32) * 0.5 + 60
    out = augment(x, seeded(), **{**OFF, "contrast": 0.3})
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-3)
    ratio = out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert ratio.min() >= 0.7 - 1e-4 and ratio.max() <= 1.3 + 1e-4 and ratio.std() > 0.05


def test_clamped_to_grey_levels():
    bright = torch.full((4, 1, 8, 8), 250.0)
    assert augment(bright, seeded(), **{**OFF, "brightness": 0.5}).max() <= 255


def test_crop_zooms_into_a_window_inside_the_image():
    ramp = torch.arange(32, dtype=torch.float32).view(1, 1, 1, 32).expand(16, 1, 32, 32) * 8  # 0..248, left to right
    out = augment(ramp, seeded(), **{**OFF, "crop": 0.5})
    assert out.shape == ramp.shape
    span = out[:, 0, 16, -1] - out[:, 0, 16, 0]
    assert torch.all(span <= 248 + 1e-3) and torch.all(span >= 0.5 * 248 - 16)  # at least half the width kept
    assert span.min() < 240  # and some windows really are smaller
    assert out.min() >= 0 and out.max() <= 248 + 1e-3  # nothing from outside the image


def test_integer_batches_are_accepted():
    x = batch().to(torch.uint8)
    assert augment(x, seeded()).dtype == torch.float32


def test_bad_options():
    x = batch(2)
    with pytest.raises(BadOption, match="crop"):
        augment(x, seeded(), crop=0)
    with pytest.raises(BadOption, match="brightness"):
        augment(x, seeded(), brightness=1.5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        augment(x[0], seeded())
