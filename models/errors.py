"""Errors of the offline model jobs; each names the bad input and what was expected."""

from __future__ import annotations


class ModelsError(Exception):
    """Base of every error raised by ``models``."""


class DataError(ModelsError):
    """A data directory, manifest or image is missing, malformed or unreadable."""


class ManifestError(DataError):
    """A manifest is missing, lacks a column, or holds a bad row (unknown label, bad split)."""


class ImageReadError(DataError):
    """An image named by a manifest cannot be read or decoded."""


class CheckpointError(ModelsError):
    """A checkpoint is missing, unreadable or does not describe a known model."""


class ExportError(ModelsError):
    """ONNX export failed or its output does not match PyTorch within tolerance."""


class SidecarMismatchError(ModelsError):
    """An ONNX model and its sidecar disagree (hash, input size, labels, I/O names)."""


class ConfigError(ModelsError):
    """A model or training configuration names an unknown variant or a bad value."""


class RecoveryError(ModelsError):
    """An ONNX model cannot be turned back into a checkpoint (see ``models.recover``)."""
