"""Image uploads: verdict, score and heatmap as the CLI gives them, records for the dashboard, bad uploads refused."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest_plugins = ["rest_service"]


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(b64: str):
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_an_anomaly_upload_gets_the_verdict_and_heatmap_of_the_model(api, service):
    path = sorted((service.models.inspection / "test").glob("*/*.png"))[0]
    answer = api.post("/api/models/anomaly/inspect", files={"image": (path.name, path.read_bytes(), "image/png")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["version"], body["task"]) == ("anomaly", 1, "anomaly")
    result = body["inspections"][0]
    expected = service.models.anomaly.predict(path).iloc[0]
    assert result["file"] == path.name
    assert result["verdict"] == expected["verdict"]
    assert result["score"] == pytest.approx(float(expected["score"]), rel=1e-4, abs=1e-6)
    heatmap = decoded(result["heatmap_png"])
    assert heatmap.format == "PNG" and heatmap.size == (64, 64) and heatmap.mode == "RGB"
    assert isinstance(result["inspection_id"], int)


def test_a_batch_of_defect_images_is_scored_and_recorded(api, service):
    paths = [sorted((service.models.classes / c).glob("*.png"))[0] for c in ("crack", "scratch", "spot")]
    answer = api.post("/api/models/defects/inspect/batch",
                      files=[("images", (p.name, p.read_bytes(), "image/png")) for p in paths])
    assert answer.status_code == 200, answer.text
    results = answer.json()["inspections"]
    expected = service.models.defects.predict(service.models.classes)
    expected = expected.set_index(expected["file"].map(lambda f: f.split("/")[-1]))
    for path, result in zip(paths, results, strict=True):
        assert result["file"] == path.name
        assert result["verdict"] == expected.loc[path.name, "defect"]
        assert result["score"] == pytest.approx(float(expected.loc[path.name, "confidence"]), rel=1e-4)
        assert set(result["probabilities"]) == {"crack", "scratch", "spot"}
        assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    store = service.app.state.store
    recorded = {r["id"]: r for r in store.inspections(limit=50)}
    for result in results:
        record = recorded[result["inspection_id"]]
        assert (record["model"], record["file"], record["verdict"]) == ("defects", result["file"], result["verdict"])
        thumbnail = store.inspection_image(result["inspection_id"], "image")
        overlay = store.inspection_image(result["inspection_id"], "heatmap")
        assert thumbnail.startswith(b"\x89PNG") and overlay.startswith(b"\x89PNG")
        assert len(thumbnail) < 50_000 and len(overlay) < 50_000


def test_uploads_that_are_not_images_are_refused_with_the_reason(api):
    grey = png(np.full((40, 40), 128, np.uint8))
    cases = [
        (("notes.txt", b"line 3 stopped at 14:02", "text/plain"), "is not an image"),
        (("empty.png", b"", "image/png"), "is not an image"),
        (("cut.png", grey[: len(grey) // 2], "image/png"), "cannot be read as an image"),
        (("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "image/png"), "cannot be read as an image"),
        (("scrambled.png", scrambled_pixels(grey), "image/png"), "cannot be read as an image"),  # fails only decoding
    ]
    for upload, words in cases:
        answer = api.post("/api/models/anomaly/inspect", files={"image": upload})
        assert answer.status_code == 422, (upload[0], answer.text)
        assert upload[0] in answer.json()["detail"] and words in answer.json()["detail"]
        assert "shopfloor-uploads" not in answer.json()["detail"]  # never the service's temporary folder


def test_a_batch_names_the_upload_that_failed_to_decode(api):
    good = png(np.full((40, 40), 128, np.uint8))
    answer = api.post("/api/models/anomaly/inspect/batch", files=[("images", ("good.png", good, "image/png")),
                                                                  ("images", ("bad.png", scrambled_pixels(good), "image/png"))])
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "'bad.png' cannot be read as an image" in detail and "good.png" not in detail and "shopfloor-uploads" not in detail


def scrambled_pixels(png_bytes: bytes) -> bytes:
    """A PNG whose headers and checksums are right but whose compressed pixels are not: it fails only when decoded."""
    import struct
    import zlib

    start = png_bytes.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png_bytes[start:start + 4])
    pixels = bytearray(png_bytes[start + 8:start + 8 + length])
    pixels[2:6] = b"\xff\xff\xff\xff"
    chunk = struct.pack(">I", length) + b"IDAT" + bytes(pixels) + struct.pack(">I", zlib.crc32(b"IDAT" + bytes(pixels)))
    return png_bytes[:start] + chunk + png_bytes[start + 12 + length:]


def test_oversized_uploads_and_too_many_images_get_413(api):
    noise = png(np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8))  # ~90 KB > the 64 KiB limit
    big = api.post("/api/models/anomaly/inspect", files={"image": ("big.png", noise, "image/png")})
    assert big.status_code == 413 and "larger than" in big.json()["detail"]
    small = png(np.full((16, 16), 90, np.uint8))
    many = api.post("/api/models/defects/inspect/batch", files=[("images", (f"{i}.png", small, "image/png")) for i in range(5)])
    assert many.status_code == 413 and "at most 4" in many.json()["detail"]


def test_images_and_tables_go_to_their_own_routes(api):
    small = png(np.full((16, 16), 90, np.uint8))
    table = api.post("/api/models/failure/inspect", files={"image": ("a.png", small, "image/png")})
    assert table.status_code == 422 and "table model" in table.json()["detail"] and "/predict" in table.json()["detail"]
    image = api.post("/api/models/anomaly/predict", json={"rows": [{"a": 1}]})
    assert image.status_code == 422 and "anomaly detector" in image.json()["detail"] and "/inspect" in image.json()["detail"]
    optimiser = api.get("/api/models/failure/recommendation")
    assert optimiser.status_code == 422 and "process optimiser" in optimiser.json()["detail"]


def test_an_upload_without_the_file_field_names_it(api):
    answer = api.post("/api/models/anomaly/inspect", files={"picture": ("a.png", b"x", "image/png")})
    assert answer.status_code == 422 and "image" in answer.json()["detail"]
    answer = api.post("/api/models/anomaly/inspect", content=b"--x\r\nnonsense",
                      headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 422 and answer.json()["detail"]
