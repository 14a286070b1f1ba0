"""Independent re-implementations used to check the worker against the model directly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from contract import LABELS, FrameMessage
from contract.keys import FRAMES_STREAM


def read_jsonl(path: Path) -> list[FrameMessage]:
    return [FrameMessage.model_validate_json(line) for line in path.read_text().splitlines()]


def dataset_crop(
    image: np.ndarray, box: tuple[float, float, float, float], sidecar: dict
) -> np.ndarray:
    """The dataset's crop (square 1.3x the longer side around the centre, black outside),
    normalised from the sidecar: (3, S, S) float32."""
    size, scale = int(sidecar["input_size"]), float(sidecar.get("crop_scale", 1.3))
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top, n = round(cx - side / 2), round(cy - side / 2), max(1, round(side))
    h, w = image.shape[:2]
    canvas = np.zeros((n, n, 3), np.uint8)
    for yy in range(max(0, top), min(h, top + n)):
        xs, xe = max(0, left), min(w, left + n)
        canvas[yy - top, xs - left : xe - left] = image[yy, xs:xe]
    crop = cv2.resize(
        canvas, (size, size), interpolation=cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    )
    if sidecar.get("colour", "grey") == "grey":
        g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        rgb = np.stack([g, g, g], axis=2)
    else:
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    x = rgb.astype(np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(sidecar["mean"], np.float32)[:, None, None]
    std = np.asarray(sidecar["std"], np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32)


class DirectModel:
    """The shipped ONNX model run straight through ONNX Runtime (no worker code)."""

    def __init__(self, model_path: Path) -> None:
        self.sidecar = json.loads(model_path.with_suffix(".json").read_text())
        self.session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

    def predict(
        self, image: np.ndarray, boxes: list[tuple[float, float, float, float]]
    ) -> np.ndarray:
        if not boxes:
            return np.zeros((0, len(LABELS)), np.float32)
        batch = np.stack([dataset_crop(image, b, self.sidecar) for b in boxes])
        name, out = (
            self.sidecar.get("input_name", "image"),
            self.sidecar.get("output_name", "probs"),
        )
        return np.asarray(self.session.run([out], {name: batch})[0])


def read_all_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def tile_of(
    box: tuple[float, float, float, float], frame_index: int, width: int, tiles
) -> int | None:
    """Which gallery tile a face is in, undoing the clip's 2 px/frame drift."""
    cx = ((box[0] + box[2]) / 2 - 2 * frame_index) % width
    cy = (box[1] + box[3]) / 2
    for tile in tiles:
        if tile.x <= cx < tile.x + tile.w and tile.y <= cy < tile.y + tile.h:
            return int(tile.index)
    return None


def stream_data(client: Any, count: int | None = None) -> list[dict[str, Any]]:
    """Decoded ``data`` fields of the frames stream (oldest first; newest ``count`` if given)."""
    entries: Any = (
        client.xrange(FRAMES_STREAM)
        if count is None
        else client.xrevrange(FRAMES_STREAM, count=count)[::-1]
    )
    return [json.loads(fields[b"data"]) for _, fields in entries]


def hash_json(client: Any, key: str) -> dict[str, Any]:
    """A Redis hash of JSON values, decoded."""
    raw: Any = client.hgetall(key)
    return {k.decode(): json.loads(v) for k, v in raw.items()}
