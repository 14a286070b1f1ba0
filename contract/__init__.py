"""The wire contract: what workers publish and the service reads, and the model sidecar.

This package is imported by every deployable (worker, service, models) and imports none of
them. It holds only pydantic models and constants, so a change here is a change of protocol.
"""

from contract.labels import LABELS, Label
from contract.messages import (
    CameraAssignment,
    ClassAggregate,
    FaceScore,
    FrameMessage,
    PrivacyMode,
    Probs,
)
from contract.sidecar import ModelSidecar, SaliencySpec

__all__ = [
    "LABELS",
    "CameraAssignment",
    "ClassAggregate",
    "FaceScore",
    "FrameMessage",
    "Label",
    "ModelSidecar",
    "PrivacyMode",
    "Probs",
    "SaliencySpec",
]
