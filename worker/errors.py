"""The worker's exception hierarchy: every error names the bad input and what was expected."""


class WorkerError(Exception):
    """Base class of every error the worker raises on purpose."""


class ConfigError(WorkerError):
    """Settings, a seat map or a camera assignment is invalid."""


class ModelError(WorkerError):
    """The ONNX model or its sidecar is missing, malformed or mismatched."""


class SourceError(WorkerError):
    """A camera or video source cannot be opened or read."""


class PublishError(WorkerError):
    """A message could not be handed to its destination."""
