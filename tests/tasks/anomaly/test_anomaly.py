"""AnomalyModel: good-only learning, thresholds, scores in 0..1, tiling, size, round trip, ONNX parity."""

from __future__ import annotations

import os

import numpy as np
import pytest
from manifests import edited_copy
from PIL import Image

import shopfloor
from shopfloor.errors import BadOption, BadTarget, NotAModel, ShopfloorWarning
from shopfloor.tasks.anomaly.model import AnomalyModel
from shopfloor.vision.export import check_parity, export_onnx
from shopfloor.vision.folders import read_inspection_folder


def test_generated_defects_are_told_from_good_parts(anomaly_model, surfaces):
    metrics = anomaly_model.model.evaluate(surfaces.inspection)
    assert metrics["image_auroc"] >= 0.9, metrics
    assert metrics["pixel_auroc"] >= 0.9, metrics
    assert 0 <= metrics["aupro"] <= 1 and metrics["images"] == 28


def test_scores_are_squashed_with_the_threshold_at_one_half(anomaly_model, surfaces):
    model = anomaly_model.model
    table, maps = model.heatmaps(surfaces.inspection / "test")
    assert table["score"].between(0, 1).all()
    assert ((table["score"] >= 0.5) == (table["raw_score"] >= float(model.net_.threshold))).all()
    assert (table["verdict"] == np.where(table["score"] >= 0.5, "defect", "good")).all()
    # the image score is the heatmap's maximum, so a heatmap crosses 0.5 exactly when its image does
    assert all(abs(m.max() - s) < 1e-5 for m, s in zip(maps, table["score"], strict=True))


def test_good_only_threshold_does_not_flag_every_good_part(anomaly_model, surfaces):
    """anomaly's issue #2433: with no defects to choose from, the threshold must come from good parts."""
    good = read_inspection_folder(surfaces.inspection, "test")
    only_good = good.subset([i for i, label in enumerate(good.labels) if label == "good"])
    verdicts = anomaly_model.model.predict(only_good)["verdict"]
    assert (verdicts == "good").mean() >= 0.7
    assert anomaly_model.model.threshold_rule_.startswith("good-only")


def test_validation_with_defects_chooses_the_f1_threshold(surfaces):
    model = AnomalyModel(image_size=96, bank_size=1000).fit(surfaces.inspection, validation=surfaces.inspection)
    assert model.threshold_rule_.startswith("F1-optimal")
    assert model.validation_metrics_["f1"] >= 0.8


def test_validation_of_good_parts_only_keeps_the_good_only_rule(surfaces, tmp_path):
    only_good = tmp_path / "val"
    (only_good / "test" / "good").mkdir(parents=True)
    for file in sorted((surfaces.inspection / "test" / "good").iterdir())[:5]:
        (only_good / "test" / "good" / file.name).write_bytes(file.read_bytes())
    model = AnomalyModel(image_size=96, bank_size=500).fit(surfaces.inspection, validation=only_good)
    assert model.threshold_rule_.startswith("good-only") and "one kind" in model.threshold_rule_


def test_saved_size_does_not_grow_with_the_number_of_good_images(surfaces, tmp_path):
    good = read_inspection_folder(surfaces.inspection, "train")
    sizes = []
    for n in (20, 40):
        folder = AnomalyModel(image_size=96, bank_size=500).fit(good.subset(list(range(n)))).save(tmp_path / f"m{n}")
        sizes.append(sum(os.path.getsize(folder / f) for f in os.listdir(folder)))
    assert abs(sizes[0] - sizes[1]) < 10_000, sizes


def test_save_load_and_onnx_give_the_same_scores(anomaly_model, surfaces, tmp_path):
    loaded = shopfloor.load(anomaly_model.folder)
    test = surfaces.inspection / "test"
    np.testing.assert_array_equal(anomaly_model.model.predict(test)["score"], loaded.predict(test)["score"])
    path = export_onnx(loaded, tmp_path / "anomaly.onnx")
    assert check_parity(loaded, path, test) <= 1e-4


def test_masks_named_label_bmp_score_pixels_and_are_counted(anomaly_model, surfaces, tmp_path):
    """Masks named <image>_label.bmp were ignored without a word: pixel_auroc null (issue 13)."""
    import shutil

    root = shutil.copytree(surfaces.inspection, tmp_path / "labels")
    for mask in (root / "ground_truth").rglob("*_mask.png"):
        with Image.open(mask) as picture:
            picture.save(mask.with_name(mask.name.replace("_mask.png", "_label.bmp")))
        mask.unlink()
    expected = anomaly_model.model.evaluate(surfaces.inspection)
    metrics = anomaly_model.model.evaluate(root)
    assert metrics["defect_masks"] == expected["defect_masks"] == 18
    assert metrics["pixel_auroc"] == pytest.approx(expected["pixel_auroc"]) and metrics["pixel_auroc"] >= 0.9


def test_defect_images_without_any_ground_truth_are_named_when_evaluated(anomaly_model, surfaces, tmp_path):
    import shutil

    root = shutil.copytree(surfaces.inspection, tmp_path / "no-masks")
    shutil.rmtree(root / "ground_truth")
    with pytest.warns(ShopfloorWarning, match=r"18 of 18 defect images have no mask \(\w+/\w+\.png, .* and 8 more\)"):
        metrics = anomaly_model.model.evaluate(root)
    assert metrics["defect_masks"] == 0 and np.isnan(metrics["pixel_auroc"])


def test_tiles_find_a_small_defect_in_a_large_image(surfaces, tmp_path):
    """A 20-pixel spot on a 768 x 512 frame: tiled, the heatmap peaks on it."""
    from shopfloor.vision.surfaces import surface

    rng = np.random.default_rng(5)
    root = tmp_path / "large"
    (root / "train" / "good").mkdir(parents=True)
    for i in range(12):
        Image.fromarray(np.vstack([np.hstack([surface(rng, 128)[0] for _ in range(6)]) for _ in range(4)])).save(
            root / "train" / "good" / f"{i}.png")
    frame = np.vstack([np.hstack([surface(rng, 128)[0] for _ in range(6)]) for _ in range(4)])
    spot, mask = surface(rng, 128, "spot")
    frame[256:384, 512:640] = spot
    Image.fromarray(frame).save(tmp_path / "frame.png")
    model = AnomalyModel(image_size=128, bank_size=3000, tile=128).fit(root)
    table, maps = model.heatmaps(tmp_path / "frame.png")
    heatmap = maps[0]
    assert heatmap.shape == (512, 768)
    peak = np.unravel_index(heatmap.argmax(), heatmap.shape)
    rows, cols = np.nonzero(mask)
    assert abs(peak[0] - (256 + rows.mean())) < 40 and abs(peak[1] - (512 + cols.mean())) < 40, peak


def _long_part(rng, defect=None) -> tuple[np.ndarray, np.ndarray]:
    """A 1:2.5 part, 64 x 160 pixels, with the defect (if any) in its right half."""
    from shopfloor.vision.surfaces import surface

    left, right = surface(rng, 96)[0][:64], surface(rng, 64, defect)
    picture = np.hstack([left, right[0]])[:, :160]
    mask = np.hstack([np.zeros((64, 96), bool), right[1]])[:, :160]
    return picture, mask


def test_parts_that_are_not_square_keep_their_shape(tmp_path):
    """Every image was squashed into a square (issue 13): a 1:2.5 part is now seen at the network's size across
    its short side, its heatmap has the part's shape, and masks are scored in that geometry."""
    from shopfloor.vision.images import view_size

    rng = np.random.default_rng(7)
    root = tmp_path / "long"
    for folder in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / folder).mkdir(parents=True)
    for i in range(12):
        Image.fromarray(_long_part(rng)[0]).save(root / "train" / "good" / f"{i}.png")
    for i in range(3):
        Image.fromarray(_long_part(rng)[0]).save(root / "test" / "good" / f"{i}.png")
        picture, mask = _long_part(rng, "spot")
        Image.fromarray(picture).save(root / "test" / "spot" / f"{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "ground_truth" / "spot" / f"{i}_mask.png")
    model = AnomalyModel(image_size=64, bank_size=1000, progress=False).fit(root)
    assert model.keep_aspect_ and model.get_params()["keep_aspect"] is True
    table, maps = model.heatmaps(root / "test" / "spot" / "0.png")
    assert maps[0].shape == (64, 160) == view_size(160, 64, 64)[::-1]
    with Image.open(root / "ground_truth" / "spot" / "0_mask.png") as mask:
        rows, cols = np.nonzero(np.asarray(mask))
    peak = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert abs(peak[0] - rows.mean()) < 16 and abs(peak[1] - cols.mean()) < 16, peak
    metrics = model.evaluate(root)
    assert metrics["pixel_auroc"] >= 0.9 and metrics["image_auroc"] >= 0.9, metrics


def test_an_image_too_thin_to_cut_into_tiles_is_named(anomaly_model, surfaces, tmp_path):
    good = next((surfaces.inspection / "test" / "good").iterdir())
    (tmp_path / good.name).write_bytes(good.read_bytes())
    Image.new("L", (200, 5), 100).save(tmp_path / "sliver.png")
    with pytest.warns(ShopfloorWarning, match=r"skipped 1 image.*sliver\.png \(tile must be"):
        table = anomaly_model.model.predict(tmp_path)
    assert [os.path.basename(f) for f in table["file"]] == [good.name]


def test_a_model_saved_before_keep_aspect_still_squashes_and_scores_the_same():
    """tests/fixtures/make_anomaly_v1.py wrote it with the code that squashed every image into a square."""
    import pandas as pd
    from conftest import FIXTURES

    model = shopfloor.load(FIXTURES / "models" / "anomaly-v1")
    assert model.keep_aspect_ is False and model.get_params()["keep_aspect"] is False
    expected = pd.read_csv(FIXTURES / "models" / "anomaly-v1.expected.csv")
    table, maps = model.heatmaps(FIXTURES / "models" / "anomaly-v1.inputs")
    assert [os.path.basename(f) for f in table["file"]] == list(expected["file"])
    np.testing.assert_allclose(table["raw_score"], expected["raw_score"], rtol=1e-5)
    assert list(table["verdict"]) == list(expected["verdict"]) and all(m.shape == (64, 64) for m in maps)


@pytest.mark.parametrize("option", [{"image_size": 100}, {"blocks": (16,)}, {"false_alarm_rate": 0.7}, {"tile": 8}])
def test_bad_options_are_refused(option, surfaces):
    with pytest.raises(BadOption):
        AnomalyModel(**option).fit(surfaces.inspection)


def test_too_few_good_images_are_refused(surfaces):
    good = read_inspection_folder(surfaces.inspection, "train")
    with pytest.raises(BadTarget, match="at least 5"):
        AnomalyModel().fit(good.subset([0, 1, 2]))


def test_greedy_coreset_covers_every_cluster_that_random_sampling_misses():
    """Farthest-point sampling picks one point from each of 5 far-apart clusters, even a tiny one."""
    import torch

    from shopfloor.tasks.anomaly.coreset import greedy_coreset

    g = torch.Generator().manual_seed(0)
    centres = torch.eye(5, 16) * 100
    sizes = [2000, 2000, 2000, 2000, 3]
    points = torch.cat([c + torch.randn(n, 16, generator=g) for c, n in zip(centres, sizes, strict=True)])
    chosen = greedy_coreset(points, 5, g, dims=16)
    cluster = torch.cdist(points[chosen], centres).argmin(1)
    assert sorted(cluster.tolist()) == [0, 1, 2, 3, 4]
    assert len(set(chosen.tolist())) == 5


def test_lighting_is_evened_out_per_image():
    import torch

    from shopfloor.vision.networks import even_out_lighting

    dark = torch.rand(1, 1, 32, 32) * 20 + 10
    bright = dark * 3 + 100
    a, b = even_out_lighting(torch.cat([dark, bright]))
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)
    assert abs(float(a.mean()) - 127.5) < 1


@pytest.mark.parametrize(("change", "named"), [
    ({"params__image_size": 10**6}, "image_size"),
    ({"params__sigma": 1e9}, "params.sigma"),
    ({"params__sigma": 4.0}, "params.sigma"),
    ({"params__blocks": [3, 10, 12]}, "params.blocks"),
    ({"state__channels": 10**6}, "state.channels"),
])
def test_a_declared_size_that_disagrees_with_the_weights_is_refused(anomaly_model, tmp_path, change, named):
    folder = edited_copy(anomaly_model.folder, tmp_path / "edited", **change)
    with pytest.raises(NotAModel, match=named.replace(".", r"\.")):
        shopfloor.load(folder)
