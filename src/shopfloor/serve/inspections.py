"""POST /api/models/{name}/inspect (one image) and /inspect/batch (several): verdict, score and heatmap.

An upload is checked before any decoder sees it: its size (the body limit counted it as it
arrived, and each file is checked again), its first bytes (PNG, JPEG, BMP or TIFF, whatever its
name or content type claims) and its pixel count from the header (a tiny PNG can claim
gigapixels). It is then written to a private temporary folder under a name the service makes up,
never the client's, and read by the same readers and `explain` as `shopfloor predict`, so that
the service and the CLI give the same verdicts. Each inspection is recorded in the store with a
thumbnail and a heatmap overlay (small PNGs) for the dashboard.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, File, Request, Response, UploadFile

from shopfloor.errors import DataFileError, ImageUnreadable
from shopfloor.serve.auth import require
from shopfloor.serve.limits import BodyTooLarge, TooBusy, TooLarge, check_count
from shopfloor.serve.live import Loaded
from shopfloor.serve.predictions import VERSION, json_response
from shopfloor.serve.schemas import InspectionResponse, problems

log = logging.getLogger("shopfloor.serve")
router = APIRouter()

SIGNATURES = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg", b"BM": ".bmp", b"II*\x00": ".tif", b"MM\x00*": ".tif"}
MAX_PIXELS = 50_000_000  # a camera frame is a few megapixels; line-scan panoramas belong to the CLI
THUMBNAIL = 160  # pixels a side of the pictures kept for the dashboard
INSTEAD = "send table rows or run histories to /predict instead"


@router.post("/models/{name}/inspect", response_model=InspectionResponse, responses=problems(401, 403, 404, 413, 422, 503),
             summary="Inspect one image: verdict, score and heatmap")
async def inspect(name: str, request: Request, image: UploadFile = File(description="a PNG, JPEG, BMP or TIFF image"),
                  version: int | None = VERSION, _: str = Depends(require("read"))) -> Response:
    return await _inspect(request, name, version, [image])


@router.post("/models/{name}/inspect/batch", response_model=InspectionResponse,
             responses=problems(401, 403, 404, 413, 422, 503), summary="Inspect several images at once")
async def inspect_batch(name: str, request: Request,
                        images: list[UploadFile] = File(description="PNG, JPEG, BMP or TIFF images"),
                        version: int | None = VERSION, _: str = Depends(require("read"))) -> Response:
    return await _inspect(request, name, version, images)


async def _inspect(request: Request, name: str, version: int | None, uploads: list[UploadFile]) -> Response:
    state = request.app.state
    check_count(len(uploads), state.max_images, "images")
    model: Loaded = await state.models.get(name, version)
    model.expect(("images",), "/inspect", INSTEAD)
    with _one_of_a_few(state, _client(request)):
        files = []
        for upload in uploads:
            content = await upload.read()
            files.append((_display_name(upload.filename), content))
        loop = asyncio.get_running_loop()
        # their own threads: table rows (state.executor) never queue behind decoding large images
        results = await loop.run_in_executor(state.image_executor, inspect_files, model.estimator, files,
                                             state.upload_dir, state.max_image_bytes, state.max_request_pixels)
    for result, (file, _) in zip(results, files, strict=True):
        thumbnail, overlay = result.pop("_pictures")
        result["inspection_id"] = await loop.run_in_executor(state.executor, _record, state, model, file, result,
                                                             thumbnail, overlay)
    return json_response({"model": model.name, "version": model.version, "task": model.task, "inspections": results})


@contextlib.contextmanager
def _one_of_a_few(state, client: str):
    """Count the client's image requests in flight; 429 beyond `image_requests_per_client` (one client with many
    large batches at once had held every thread and made single-row predictions wait a minute)."""
    busy = state.image_requests.get(client, 0)
    if busy >= state.image_requests_per_client:
        raise TooBusy(f"this client has {busy} image requests in progress already, as many as the service takes at "
                      "once from one client: wait for an answer before sending more", retry_after=2)
    state.image_requests[client] = busy + 1  # the event loop's thread only: no lock needed
    try:
        yield
    finally:
        left = state.image_requests[client] - 1
        if left:
            state.image_requests[client] = left
        else:
            del state.image_requests[client]


def _client(request: Request) -> str:
    """Who is asking: the token's digest (several machines may share one), else the address."""
    from shopfloor.serve.auth import presented_token

    token = presented_token(request)
    if token:
        return "token:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    return "address:" + (request.client.host if request.client else "?")


def inspect_files(estimator, files: list[tuple[str, bytes]], folder: Path, max_bytes: int,
                  max_pixels: int | None = None) -> list[dict]:
    """Check, write, explain and delete: one result per file, in order (runs in the image thread pool).

    The pixels of all files are added up from their headers before any is decoded: over `max_pixels`, the
    request is refused (413) without the work."""
    from shopfloor.vision.folders import ImageSet

    paths = []
    try:
        pixels = 0
        for name, content in files:
            path = _written(name, content, folder, max_bytes)
            paths.append(path)
            pixels += _pixels(path)
            if max_pixels is not None and pixels > max_pixels:
                raise TooLarge(f"the images of this request hold more than {max_pixels / 1e6:.3g} megapixels together "
                               f"(at '{name}'), the most this service decodes for one request: send fewer or smaller "
                               "images per request")
        try:
            table, heatmaps = estimator.heatmaps(ImageSet(paths, ["upload"] * len(paths), [None] * len(paths), folder))
            if len(table) != len(paths):  # the checks above should make this impossible; say so rather than mismatch
                raise ImageUnreadable("some uploads could not be decoded as images")
            return [_result(estimator, row, name, heatmaps[i], path)
                    for i, (row, (name, _), path) in enumerate(zip(table.to_dict(orient="records"), files, paths,
                                                                   strict=True))]
        except DataFileError as err:  # passed the header checks, failed to decode: named by its temporary file
            raise _as_upload(err, paths, [name for name, _ in files]) from None
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _as_upload(err: DataFileError, paths: list[Path], names: list[str]) -> ImageUnreadable:
    """The error naming the client's files instead of the service's private temporary ones: the readers name
    the path they were given, or only the folder when every file failed, so the failed files are found again
    (on this error path only) by decoding each one."""
    from shopfloor.vision.images import read_image

    failed = []
    for path, name in zip(paths, names, strict=True):
        reason = getattr(err, "reason", None) if str(path) in str(err) else None
        if reason is None:
            try:
                read_image(path, 1, 32)
                continue
            except DataFileError as again:
                reason = getattr(again, "reason", None) or "it could not be decoded"
        failed.append(f"'{name}' cannot be read as an image: {reason}")
    if not failed:
        return ImageUnreadable(str(err).replace(str(paths[0].parent), "the upload") if paths else str(err))
    return ImageUnreadable("; ".join(failed[:5]) + (f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""))


def _pixels(path: Path) -> int:
    from shopfloor.vision.images import image_size

    width, height = image_size(path)
    return width * height


def _written(name: str, content: bytes, folder: Path, max_bytes: int) -> Path:
    from shopfloor.vision.images import image_problem, image_size

    if len(content) > max_bytes:
        raise BodyTooLarge(max_bytes, f"one image ('{name}' has {len(content):,} bytes)")
    suffix = next((s for magic, s in SIGNATURES.items() if content.startswith(magic)), None)
    if suffix is None:
        raise ImageUnreadable(f"'{name}' is not an image: upload PNG, JPEG, BMP or TIFF files"
                              + (" (it is empty)" if not content else ""))
    handle, path = tempfile.mkstemp(suffix=suffix, dir=folder)
    path = Path(path)
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    try:
        problem = image_problem(path)
        if problem is None:
            width, height = image_size(path)
            if width * height > MAX_PIXELS:
                problem = f"{width} x {height} pixels is more than the {MAX_PIXELS / 1e6:.0f} megapixels the service reads"
    except Exception:
        path.unlink(missing_ok=True)
        raise
    if problem is not None:
        path.unlink(missing_ok=True)
        raise ImageUnreadable(f"'{name}' cannot be read as an image: {problem}")
    return path


def _result(estimator, row: dict, name: str, heatmap: np.ndarray, path: Path) -> dict:
    """The answer for one upload: the model's own verdict and score (`inspection_answer`), its heatmap, and the
    pictures kept for the dashboard."""
    result = {"file": name, **estimator.inspection_answer(row)}
    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0, 1)
    result["heatmap_png"] = base64.b64encode(_png(_coloured(heat))).decode("ascii")
    result["_pictures"] = _pictures(path, heat)
    return result


def _pictures(path: Path, heat: np.ndarray) -> tuple[bytes, bytes]:
    """A grey thumbnail of the upload and the same with the heatmap laid over it, as PNG bytes."""
    from PIL import Image

    with Image.open(path) as opened:
        opened.draft("L", (THUMBNAIL, THUMBNAIL))
        picture = opened.convert("L")
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    grey = np.asarray(picture, dtype=np.float32)
    level = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(picture.size, Image.BILINEAR),
                       dtype=np.float32) / 255
    alpha = (0.15 + 0.5 * level)[..., None]  # as report_inspection's overlays: the part stays visible
    blended = grey[..., None] * (1 - alpha) + _coloured(level).astype(np.float32) * alpha
    return _png(grey.astype(np.uint8)), _png(blended.astype(np.uint8))


def _coloured(level: np.ndarray) -> np.ndarray:
    """Blue (0) through green to red (1), uint8 RGB: the 'jet' colours of the CLI's overlays, without matplotlib."""
    x = level[..., None] * 4
    rgb = np.clip(1.5 - np.abs(x - np.array([3.0, 2.0, 1.0], dtype=np.float32)), 0, 1)
    return (rgb * 255).astype(np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _record(state, model: Loaded, file: str, result: dict, thumbnail: bytes, overlay: bytes) -> int | None:
    """Keep the inspection for the dashboard; a store that fails costs the record, not the answer."""
    if state.store is None:
        return None
    try:
        return int(state.store.record_inspection(model.name, model.version, file, result["verdict"], result["score"],
                                                 thumbnail, overlay))
    except Exception as err:  # noqa: BLE001 - the verdict is still right; the log says why it was not kept
        log.warning("inspection of %s not recorded: %s", file, err)
        return None


def _display_name(filename: str | None) -> str:
    """The client's file name for messages and records only: its last part, printable, at most 120 characters."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:120]
    return name or "upload"
