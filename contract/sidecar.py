"""The JSON sidecar written next to an exported ONNX model; the worker preprocesses only from it.

Graph contract: one input (``input_name``) float32 (B, 3, H, W), already normalised as below;
one output (``output_name``) float32 (B, len(labels)) of softmax probabilities. Saliency is
computed inside the graph when ``saliency.in_graph`` is true.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.labels import LABELS

SIDECAR_FORMAT: Literal["emo-sidecar/1"] = "emo-sidecar/1"


class SidecarError(ValueError):
    """A sidecar is missing, malformed, or does not match its ONNX file."""


class SaliencySpec(BaseModel):
    """How the saliency map the local branch sees is computed."""

    model_config = ConfigDict(frozen=True)

    method: str = Field(default="sun", description="sun = Zhang et al. 2008 natural statistics")
    in_graph: bool = True
    params: dict[str, object] = Field(default_factory=dict)


class ModelSidecar(BaseModel):
    """Self-description of an exported model."""

    model_config = ConfigDict(frozen=True)

    format: Literal["emo-sidecar/1"] = SIDECAR_FORMAT
    onnx_file: str
    onnx_sha256: str
    checkpoint_sha256: str
    input_name: str = "image"
    output_name: str = "probs"
    input_size: int = Field(gt=0, description="H = W of the model input in pixels")
    colour: Literal["grey", "rgb"] = "grey"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    labels: tuple[str, ...] = LABELS
    crop_scale: float = Field(default=1.3, description="square crop side / detected box side")
    saliency: SaliencySpec = SaliencySpec()
    opset: int
    model: dict[str, object] = Field(default_factory=dict, description="architecture arguments")

    @classmethod
    def load(cls, path: Path, *, verify_onnx: bool = True) -> ModelSidecar:
        """Read and validate a sidecar; with ``verify_onnx`` check the ONNX file's hash too."""
        if not path.is_file():
            raise SidecarError(f"model sidecar {path} not found (expected a JSON file)")
        try:
            sidecar = cls.model_validate(json.loads(path.read_text()))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise SidecarError(f"model sidecar {path} is malformed: {exc}") from exc
        if tuple(sidecar.labels) != LABELS:
            raise SidecarError(f"model sidecar {path} labels {sidecar.labels} != {LABELS}")
        if verify_onnx:
            onnx_path = sidecar.onnx_path(path)
            if not onnx_path.is_file():
                raise SidecarError(f"ONNX model {onnx_path} named by {path} not found")
            digest = sha256_file(onnx_path)
            if digest != sidecar.onnx_sha256:
                raise SidecarError(
                    f"ONNX model {onnx_path} does not match sidecar {path}: "
                    f"sha256 {digest[:12]} != {sidecar.onnx_sha256[:12]}"
                )
        return sidecar

    def onnx_path(self, sidecar_path: Path) -> Path:
        """The ONNX file this sidecar describes (relative to the sidecar)."""
        return sidecar_path.parent / self.onnx_file


def sidecar_path_for(onnx_path: Path) -> Path:
    """``model.onnx`` -> ``model.json``."""
    return onnx_path.with_suffix(".json")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
