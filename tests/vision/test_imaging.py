"""What the inspection estimators share: grey-or-colour detection, batching, verdict files."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from shopfloor.vision.estimator import image_channels, in_batches, stratified_split
from shopfloor.vision.folders import list_images


def test_grey_saved_as_rgb_counts_as_grey_and_real_colour_does_not(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (40, 40), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "grey_as_rgb.jpg", quality=95)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert image_channels(list_images(tmp_path)) == 1
    colour = np.stack([grey, grey // 2, 255 - grey], -1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    assert image_channels(list_images(tmp_path)) == 3


def test_batches_on_every_core_give_the_same_outputs_in_order():
    images = torch.arange(10 * 4, dtype=torch.uint8).reshape(10, 1, 2, 2)
    before = torch.get_num_threads()
    outputs = in_batches(lambda x: (x.sum((1, 2, 3)), x.mean((1, 2, 3))), images, batch=3)
    assert torch.get_num_threads() == before
    np.testing.assert_array_equal(outputs[0], images.float().sum((1, 2, 3)).numpy())
    assert outputs[1].shape == (10,)


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.array([0] * 20 + [1] * 5 + [2] * 2)
    train, valid = stratified_split(labels, 0.15, seed=0)
    assert set(labels[train]) == set(labels[valid]) == {0, 1, 2}
    assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == len(labels)
