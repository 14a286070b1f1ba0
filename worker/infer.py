"""Saliency + inference: the exported fusion model in ONNX Runtime, preprocessed from its sidecar.

The SUN saliency map the local branch sees is computed inside the exported graph
(``sidecar.saliency.in_graph``); a sidecar that asks for saliency outside the graph is refused
at start-up rather than silently served without it (``method == "none"``, a model without the
saliency branch, needs none). All faces of a tick go through the model
as one batch (split only above ``max_batch``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from contract import LABELS, ModelSidecar
from contract.sidecar import SidecarError, sidecar_path_for
from worker.errors import ModelError
from worker.geometry import crop_square, square
from worker.types import FaceBox

logger = logging.getLogger(__name__)


class EmotionClassifier(Protocol):
    """Scores a batch of faces of one frame each; returns (N, 6) probabilities."""

    providers: list[str]

    def crops(self, image: np.ndarray, boxes: list[FaceBox]) -> np.ndarray: ...

    def classify(self, batch: np.ndarray) -> np.ndarray: ...


def choose_providers(device: str, available: list[str]) -> list[str]:
    """CUDA first when asked for (or auto and present), CPU always as the fallback."""
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ModelError(
            f"device 'cuda' requested but ONNX Runtime offers only {available} "
            "(install onnxruntime-gpu)"
        )
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class Preprocessor:
    """Crop exactly as the dataset was made and normalise exactly as the sidecar says."""

    def __init__(self, sidecar: ModelSidecar) -> None:
        self.size = sidecar.input_size
        self.crop_scale = sidecar.crop_scale
        self.grey = sidecar.colour == "grey"
        self.mean = np.asarray(sidecar.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(sidecar.std, dtype=np.float32).reshape(1, 3, 1, 1)

    def crop(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """(size, size, 3) uint8 RGB (or grey x3): a square of crop_scale x the box side."""
        patch = crop_square(image, square(box, self.crop_scale), self.size)
        if self.grey:
            grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
            return np.repeat(grey[:, :, None], 3, axis=2)
        return cv2.cvtColor(patch, cv2.COLOR_BGR2RGB)

    def batch(self, image: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        """(N, 3, size, size) float32 normalised model input."""
        if not boxes:
            return np.zeros((0, 3, self.size, self.size), dtype=np.float32)
        crops = np.stack([self.crop(image, b) for b in boxes])  # (N, H, W, 3) uint8
        x = crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0  # (N, 3, H, W)
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)


def load_sidecar(model_path: Path) -> ModelSidecar:
    """The sidecar next to ``model_path`` (``x.onnx`` -> ``x.json``), hash-checked."""
    if not model_path.is_file():
        raise ModelError(f"model file {model_path} not found (expected an exported .onnx file)")
    try:
        sidecar = ModelSidecar.load(sidecar_path_for(model_path), verify_onnx=True)
    except SidecarError as exc:
        raise ModelError(str(exc)) from exc
    if sidecar.onnx_path(sidecar_path_for(model_path)).resolve() != model_path.resolve():
        raise ModelError(f"sidecar for {model_path} describes {sidecar.onnx_file}, not this file")
    if sidecar.saliency.method != "none" and not sidecar.saliency.in_graph:
        raise ModelError(
            f"sidecar of {model_path} computes saliency outside the graph; the worker serves only "
            "models with saliency in the graph (export with saliency.in_graph = true)"
        )
    return sidecar


class OnnxClassifier:
    """The fusion model in ONNX Runtime; CUDAExecutionProvider when available."""

    def __init__(
        self, model_path: Path, device: str = "auto", threads: int = 0, max_batch: int = 64
    ) -> None:
        import onnxruntime as ort

        self.model_path = model_path
        self.sidecar = load_sidecar(model_path)
        self.pre = Preprocessor(self.sidecar)
        self.max_batch = max_batch
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        wanted = choose_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=wanted)
        except Exception as exc:  # ORT raises its own untyped errors on a bad file
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
        self.providers: list[str] = list(self.session.get_providers())
        self._check_graph()
        logger.info("model %s on providers %s", model_path, self.providers)

    def _check_graph(self) -> None:
        s, path = self.sidecar, self.model_path
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if s.input_name not in inputs or s.output_name not in outputs:
            raise ModelError(
                f"{path} has inputs {list(inputs)} / outputs {list(outputs)}; its sidecar expects "
                f"input {s.input_name!r} and output {s.output_name!r}"
            )
        shape = inputs[s.input_name].shape
        if len(shape) != 4 or any(
            isinstance(d, int) and d != want
            for d, want in zip(shape[1:], (3, s.input_size, s.input_size), strict=True)
        ):
            raise ModelError(
                f"{path} input shape {shape} does not match sidecar (B, 3, {s.input_size}, "
                f"{s.input_size})"
            )
        out_shape = outputs[s.output_name].shape
        if len(out_shape) != 2 or out_shape[1] != len(LABELS):
            raise ModelError(f"{path} output shape {out_shape}, expected (B, {len(LABELS)})")

    def crops(self, image: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        """Normalised model input for ``boxes`` of one frame."""
        return self.pre.batch(image, boxes)

    def classify(self, batch: np.ndarray) -> np.ndarray:
        """(N, 6) probabilities for a (N, 3, H, W) batch; N = 0 gives (0, 6)."""
        if len(batch) == 0:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        parts = [
            self.session.run([self.sidecar.output_name], {self.sidecar.input_name: chunk})[0]
            for chunk in (
                batch[i : i + self.max_batch] for i in range(0, len(batch), self.max_batch)
            )
        ]
        probs = np.concatenate(parts).astype(np.float32)
        return np.clip(probs, 0.0, 1.0)
