"""Image models: the profile holds per-image statistics, the score and the pooled features; a darker camera shows
in the statistics even where the model's features, lighting evened out, do not move."""

import numpy as np
import torch
from PIL import Image

from shopfloor.watch.compare import compare_embedding
from shopfloor.watch.images import image_statistics
from shopfloor.watch.profile import embedding_profile


def test_image_statistics_follow_the_pixels():
    images = torch.full((2, 1, 8, 8), 100, dtype=torch.uint8)
    images[1, :, :4] = 0
    stats = image_statistics(images)
    assert stats["brightness"].tolist() == [100.0, 50.0]
    assert stats["dark share"].tolist() == [0.0, 0.5]


def test_the_embedding_test_flags_moved_features_and_not_resampled_ones():
    rng = np.random.default_rng(0)
    profile = embedding_profile(rng.normal(size=(300, 40)), seed=0)
    assert compare_embedding(profile, rng.normal(size=(150, 40)))["verdict"] == "ok"
    assert compare_embedding(profile, rng.normal(0.5, 1, size=(150, 40)))["verdict"] == "drift"


def test_an_anomaly_model_profiles_its_set_aside_good_images_and_sees_a_darker_camera(anomaly_model, surfaces, tmp_path):
    model = anomaly_model.model
    profile = model.drift_profile_
    assert list(profile["inputs"]) == ["brightness", "contrast", "dark share", "bright share"]
    assert list(profile["outputs"]) == ["score"] and "embedding" in profile
    good = sorted((surfaces.inspection / "test" / "good").iterdir())
    for path in good:
        pixels = np.asarray(Image.open(path)).astype(float) * 0.7
        Image.fromarray(np.rint(pixels).astype(np.uint8)).save(tmp_path / path.name)
    as_is, dark = model.drift_view(surfaces.inspection / "test" / "good"), model.drift_view(tmp_path)
    ratio = dark.inputs["brightness"].mean() / as_is.inputs["brightness"].mean()
    assert 0.65 < ratio < 0.75
    assert dark.features.shape == as_is.features.shape == (len(good), profile["embedding"]["dims"])


def test_a_defect_model_profiles_its_held_out_images_and_their_classes(defect_model, surfaces, tmp_path):
    from shopfloor.watch.compare import compare_view

    profile = defect_model.model.drift_profile_
    assert list(profile["inputs"]) == ["brightness", "contrast", "dark share", "bright share"]
    assert profile["outputs"]["defect"]["kind"] == "category" and profile["outputs"]["confidence"]["kind"] == "numeric"
    assert "embedding" in profile
    report = compare_view(profile, defect_model.model.drift_view(surfaces.classes_test))
    assert [r["input"] for r in report["outputs"]][:2] == ["defect", "confidence"]
