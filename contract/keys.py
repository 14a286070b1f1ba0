"""Redis key and stream names shared by workers and the service (the control and data planes)."""

from typing import Final

#: Stream of FrameMessage JSON, one entry per analysed frame (field ``data``).
FRAMES_STREAM: Final = "emo:frames"
#: Hash camera_id -> CameraAssignment JSON, written by the service, read by workers.
CAMERAS_HASH: Final = "emo:cameras"
#: Hash camera_id -> camera status JSON (state, reconnects, worker), written by workers.
CAMERA_STATUS_HASH: Final = "emo:camera-status"
#: Channel the service publishes on when CAMERAS_HASH changes (workers also poll it).
CAMERAS_CHANGED_CHANNEL: Final = "emo:cameras:changed"


def lease_key(camera_id: str) -> str:
    """Key a worker holds (SET NX PX) while it analyses ``camera_id``."""
    return f"emo:lease:{camera_id}"


def heartbeat_key(worker_id: str) -> str:
    """Key a live worker refreshes with an expiry."""
    return f"emo:worker:{worker_id}"
