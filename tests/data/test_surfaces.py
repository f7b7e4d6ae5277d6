"""The synthetic surface set: deterministic, readable by both folder readers, defects visible but not trivial."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image, ImageFilter

from shopfloor.errors import BadOption, ShopfloorWarning
from shopfloor.vision.folders import read_class_folders, read_inspection_folder
from shopfloor.vision.images import read_image, read_mask
from shopfloor.vision.surfaces import DEFECTS, surface, write_defect_classes, write_inspection_set


def quietly(reader, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShopfloorWarning)
        return reader(*args)


def test_defect_classes_are_class_folders(tmp_path):
    root = write_defect_classes(tmp_path / "classes", per_class=5, size=64, seed=1)
    images = quietly(read_class_folders, root)
    assert images.classes == sorted(DEFECTS) == ["crack", "scratch", "spot"]
    assert len(images) == 15 and images.skipped == []
    assert read_image(images.paths[0], 1).shape == (1, 64, 64)
    assert Image.open(images.paths[0]).mode == "L"


def test_inspection_set_is_the_mvtec_layout_with_masks(tmp_path):
    root = write_inspection_set(tmp_path / "tiles", train_good=6, test_good=3, test_per_defect=2, size=64, seed=1)
    train = quietly(read_inspection_folder, root, "train")
    test = quietly(read_inspection_folder, root, "test")
    assert len(train) == 6 and train.classes == ["good"]
    assert test.labels == ["good"] * 3 + ["crack"] * 2 + ["scratch"] * 2 + ["spot"] * 2
    for label, mask in zip(test.labels, test.masks, strict=True):
        assert (mask is None) == (label == "good")
        if mask is not None:
            assert mask.name.endswith("_mask.png") and mask.parent.name == label
            assert set(np.unique(np.asarray(Image.open(mask)))) == {0, 255}
            assert read_mask(mask, 64, 64).any()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    first = write_inspection_set(tmp_path / "a", train_good=3, test_good=1, test_per_defect=1, size=48, seed=7)
    again = write_inspection_set(tmp_path / "b", train_good=3, test_good=1, test_per_defect=1, size=48, seed=7)
    other = write_inspection_set(tmp_path / "c", train_good=3, test_good=1, test_per_defect=1, size=48, seed=8)
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*.png"))
    assert len(names) == 3 + 1 + 3 + 3
    assert all((first / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert all((first / n).read_bytes() != (other / n).read_bytes() for n in names)


def test_a_longer_train_set_leaves_the_test_set_alone(tmp_path):
    short = write_inspection_set(tmp_path / "a", train_good=2, test_good=2, test_per_defect=1, size=48)
    longer = write_inspection_set(tmp_path / "b", train_good=5, test_good=2, test_per_defect=1, size=48)
    for path in (short / "test").rglob("*.png"):
        assert path.read_bytes() == (longer / path.relative_to(short)).read_bytes()


def test_good_surfaces_have_grain_shading_and_differ_in_brightness():
    rng = np.random.default_rng(0)
    goods = [surface(rng, 128)[0].astype(float) for _ in range(20)]
    grain = [np.std(g - np.asarray(Image.fromarray(g.astype(np.uint8)).filter(ImageFilter.BoxBlur(3)))) for g in goods]
    assert 3 < np.mean(grain) < 9  # fine grain a few grey levels strong
    assert np.std([g.mean() for g in goods]) > 4  # brightness varies from part to part
    assert all(not surface(rng, 128)[1].any() for _ in range(3))  # good surfaces have empty masks


@pytest.mark.parametrize("defect", DEFECTS)
def test_defects_stand_out_a_few_tens_of_grey_levels_but_not_outside_the_good_range(defect):
    rng = np.random.default_rng(5)
    goods = np.stack([surface(rng, 128)[0] for _ in range(40)])
    low, high = goods.min(), goods.max()  # a fixed threshold that never flags a good part
    within = []
    for _ in range(25):
        image, mask = surface(rng, 128, defect)
        image = image.astype(float)
        assert 0.0005 < mask.mean() < 0.08  # a few pixels to a thin line, never the whole part
        around = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(9))) > 0
        background = np.median(image[around & ~mask])
        deviation = np.sort(np.abs(image[mask] - background))
        strongest = deviation[-max(1, len(deviation) // 4):].mean()
        assert 15 < strongest < 80, f"{defect} stands out by {strongest:.0f} grey levels"
        within.append(np.mean((image[mask] >= low) & (image[mask] <= high)))
    # not a job for a fixed threshold: most defect pixels lie within the range of good surfaces
    assert np.mean(within) > 0.7


def test_spots_are_dark_and_cracks_dark_while_scratches_go_both_ways():
    rng = np.random.default_rng(2)
    signs = {d: [] for d in DEFECTS}
    for defect in DEFECTS:
        for _ in range(30):
            image, mask = surface(rng, 96, defect)
            signs[defect].append(np.sign(image[mask].mean() - image[~mask].mean()))
    assert set(signs["spot"]) == {-1} and set(signs["crack"]) == {-1}
    assert set(signs["scratch"]) == {-1, 1}


def test_bad_arguments(tmp_path):
    with pytest.raises(BadOption, match="unknown defect 'dent'"):
        surface(np.random.default_rng(0), 64, "dent")
    with pytest.raises(BadOption, match="size must be a whole number >= 32"):
        write_defect_classes(tmp_path, size=16)
    with pytest.raises(BadOption, match="train_good"):
        write_inspection_set(tmp_path, train_good=0)
