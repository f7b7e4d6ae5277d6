"""DefectModel: learning, heatmaps, calibration, round trip, ONNX parity, and what it refuses."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from manifests import edited_copy

import shopfloor
from shopfloor.artifacts import MANIFEST, sha256_json
from shopfloor.errors import BadOption, BadTarget, NotAModel, ShopfloorWarning
from shopfloor.tasks.defects.model import DefectModel
from shopfloor.vision.networks import DefectNet, SurfaceCNN


def test_short_training_clearly_beats_chance_on_generated_defects(defect_model, surfaces):
    metrics = defect_model.model.evaluate(surfaces.classes_test)
    assert metrics["images"] == 30
    assert metrics["accuracy"] >= 0.6, metrics  # three classes: chance is 0.33


def test_predictions_name_a_class_with_probabilities_that_add_up(defect_model, surfaces):
    table = defect_model.model.predict(surfaces.classes_test)
    assert list(table.columns[:3]) == ["file", "defect", "confidence"]
    probabilities = table[[f"p_{c}" for c in defect_model.model.classes_]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    assert set(table["defect"]) <= set(defect_model.model.classes_)
    np.testing.assert_allclose(table["confidence"], probabilities.max(1))


def test_heatmaps_cover_the_image_scaled_to_one(defect_model, surfaces):
    table, maps = defect_model.model.heatmaps(surfaces.classes_test)
    assert maps.shape == (len(table), 64, 64)
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1, atol=1e-5)


def test_class_activation_map_averages_to_the_logit():
    """The heatmap is exact: its spatial mean (before ReLU) plus the bias is the class logit."""
    torch.manual_seed(0)
    net = DefectNet(SurfaceCNN(1), n_classes=3).eval()
    images = torch.rand(2, 1, 64, 64) * 255
    maps = net.feature_map(images)
    cam = torch.einsum("k,bkhw->bhw", net.classify.weight[1], maps)
    torch.testing.assert_close(cam.mean((1, 2)) + net.classify.bias[1], net(images)[:, 1], atol=1e-4, rtol=1e-4)


def test_save_load_gives_identical_predictions(defect_model, surfaces):
    loaded = shopfloor.load(defect_model.folder)
    a, b = defect_model.model.predict(surfaces.classes_test), loaded.predict(surfaces.classes_test)
    np.testing.assert_array_equal(a.filter(like="p_").to_numpy(), b.filter(like="p_").to_numpy())
    assert loaded.classes_ == defect_model.model.classes_ and loaded.get_params() == defect_model.model.get_params()


def test_temperature_is_fitted_and_positive(defect_model):
    assert float(defect_model.model.net_.temperature) > 0
    assert 0 <= defect_model.model.validation_metrics_["accuracy"] <= 1


def test_one_class_only_is_refused(tmp_path):
    from shopfloor.vision.surfaces import write_defect_classes

    root = write_defect_classes(tmp_path / "one", per_class=4, size=32)
    for name in ("scratch", "spot"):
        for file in (root / name).iterdir():
            file.unlink()
        (root / name).rmdir()
    with pytest.raises(BadTarget, match="class"):
        DefectModel(backbone="scratch", max_epochs=1).fit(root)


def test_unknown_backbone_is_refused(surfaces):
    with pytest.raises(BadOption, match="scratch or lite0"):
        DefectModel(backbone="resnet").fit(surfaces.classes)


def test_lite0_backbone_learns_neu_from_a_few_images(shared_data):
    """ImageNet features separate NEU's six classes from 10 images each (chance: 0.17)."""
    from shopfloor.vision.folders import read_class_folders

    folders = read_class_folders(shared_data / "neu-det" / "images")
    labels = np.array(folders.labels)
    train = sorted(i for c in folders.classes for i in np.flatnonzero(labels == c)[:10])
    test = sorted(i for c in folders.classes for i in np.flatnonzero(labels == c)[100:105])
    model = DefectModel(backbone="lite0", image_size=128, augment=False, progress=False).fit(folders.subset(train))
    assert model.evaluate(folders.subset(test))["accuracy"] >= 0.7


@pytest.mark.parametrize(("change", "named"), [
    ({"state__image_size": 10**6}, "state.image_size"),
    ({"state__channels": 2}, "state.channels"),
    ({"state__classes": ["a", "b", "c", "d", "e", "f", "g"]}, "state.classes"),
    ({"params__backbone": "resnet"}, "params.backbone"),
])
def test_a_declared_size_that_disagrees_with_the_weights_is_refused(defect_model, tmp_path, change, named):
    folder = edited_copy(defect_model.folder, tmp_path / "edited", **change)
    with pytest.raises(NotAModel, match=named.replace(".", r"\.")):
        shopfloor.load(folder)


def test_auto_backbone_is_the_imagenet_one_and_the_model_says_so(surfaces, tmp_path):
    """The default was the slow from-scratch CNN (issue 13); lite0 is used when its weights are installed,
    and the manifest, the loaded model and the report name the backbone that was trained."""
    model = DefectModel(image_size=64, augment=False, progress=False).fit(surfaces.classes)
    assert model.backbone == "auto" and model.backbone_ == "lite0"
    folder = model.save(tmp_path / "m")
    assert json.loads((folder / MANIFEST).read_text())["state"]["backbone"] == "lite0"
    assert shopfloor.load(folder).backbone_ == "lite0"
    assert model.evaluate(surfaces.classes_test)["accuracy"] >= 0.6


def test_auto_backbone_without_the_weights_falls_back_to_scratch_with_a_warning(surfaces, monkeypatch):
    monkeypatch.setattr("shopfloor.vision.efficientnet.lite0_installed", lambda: False)
    with pytest.warns(ShopfloorWarning, match=r"shopfloor\[pretrained\]"):
        model = DefectModel(image_size=32, max_epochs=1, progress=False).fit(surfaces.classes)
    assert model.backbone_ == "scratch" and isinstance(model.net_.features, SurfaceCNN)


def test_from_scratch_training_uses_every_core_outside_pytest_xdist(surfaces, monkeypatch):
    """The CNN trained on one thread while the machine's other cores sat idle (issue 13)."""
    import shopfloor.tasks.defects.model as defects

    used, fit_module = [], defects.fit_module

    def spy(module, loss, train, valid, config, *args):
        used.append(config.threads)
        return fit_module(module, loss, train, valid, config, *args)

    monkeypatch.setattr(defects, "fit_module", spy)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    DefectModel(backbone="scratch", image_size=32, max_epochs=1, progress=False).fit(surfaces.classes)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")  # sibling workers already keep the other cores busy
    DefectModel(backbone="scratch", image_size=32, max_epochs=1, progress=False).fit(surfaces.classes)
    assert used == [3, 1]


def test_a_model_saved_before_auto_keeps_its_backbone(defect_model, surfaces, tmp_path):
    """Old manifests name the backbone in the params only; they load and answer as before."""
    folder = shutil.copytree(defect_model.folder, tmp_path / "old")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.pop("manifest_sha256")
    del manifest["state"]["backbone"]
    manifest["manifest_sha256"] = sha256_json(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    loaded = shopfloor.load(folder)
    assert loaded.backbone_ == "scratch"
    np.testing.assert_array_equal(loaded.predict(surfaces.classes_test).filter(like="p_").to_numpy(),
                                  defect_model.model.predict(surfaces.classes_test).filter(like="p_").to_numpy())
