"""The faces the two image tasks share (`ImageFaces`), apart from the helpers in estimator.py that
vision/export.py itself uses: this module calls the exporter, so the exporter cannot import it. The exporter
(and onnx with it) is imported when a model is exported, not when one is loaded."""

from __future__ import annotations


class ImageFaces:
    """What the two image tasks answer the same way, mixed into their estimators: they take images, an image's
    explanation is its heatmap laid over it, and one exporter writes both (it asks each model for its
    `onnx_outputs`)."""

    accepts = "images"
    predicted_items = "images, with heatmaps"
    explained_items = "images, with heatmap overlays"

    def explain_file(self, source, destination) -> int:
        return self.predict_file(source, destination)  # the verdicts, with a heatmap overlay per image

    def export_onnx(self, path, opset: int = 18):
        from shopfloor.vision.export import export_onnx

        return export_onnx(self, path, opset)

    def onnx_parity(self, path, data) -> float:
        from shopfloor.vision.export import check_parity

        return check_parity(self, path, data)
