"""Control plane: tell workers which cameras to analyse, read what they report back."""

from __future__ import annotations

import json
import logging
import threading
from typing import Protocol

import redis

from contract import CameraAssignment
from contract.keys import CAMERA_STATUS_HASH, CAMERAS_CHANGED_CHANNEL, CAMERAS_HASH
from service.errors import UnavailableError

logger = logging.getLogger(__name__)


class CameraControl(Protocol):
    """Where camera assignments go and camera status comes from."""

    def assign(self, assignment: CameraAssignment) -> None: ...

    def unassign(self, camera_id: str) -> None: ...

    def status(self, camera_ids: list[str]) -> dict[str, dict[str, object]]: ...


class RedisCameraControl:
    """``CAMERAS_HASH`` + ``CAMERAS_CHANGED_CHANNEL`` for assignments, ``CAMERA_STATUS_HASH``."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def assign(self, assignment: CameraAssignment) -> None:
        try:
            pipe = self._redis.pipeline()
            pipe.hset(CAMERAS_HASH, assignment.camera_id, assignment.model_dump_json())
            pipe.publish(CAMERAS_CHANGED_CHANNEL, assignment.camera_id)
            pipe.execute()
        except redis.RedisError as exc:
            raise UnavailableError(f"Redis: could not assign camera: {exc}") from exc

    def unassign(self, camera_id: str) -> None:
        try:
            pipe = self._redis.pipeline()
            pipe.hdel(CAMERAS_HASH, camera_id)
            pipe.publish(CAMERAS_CHANGED_CHANNEL, camera_id)
            pipe.execute()
        except redis.RedisError as exc:
            raise UnavailableError(f"Redis: could not unassign camera: {exc}") from exc

    def status(self, camera_ids: list[str]) -> dict[str, dict[str, object]]:
        if not camera_ids:
            return {}
        try:
            raw = self._redis.hmget(CAMERA_STATUS_HASH, camera_ids)
        except redis.RedisError as exc:
            logger.warning("camera status unavailable: %s", exc)
            return {}
        return {
            cid: _parse_status(cid, value)
            for cid, value in zip(camera_ids, raw, strict=True)
            if value
        }


class MemoryCameraControl:
    """Embedded mode: assignments and status live in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.assignments: dict[str, CameraAssignment] = {}
        self.statuses: dict[str, dict[str, object]] = {}
        self.changed = threading.Event()

    def assign(self, assignment: CameraAssignment) -> None:
        with self._lock:
            self.assignments[assignment.camera_id] = assignment
        self.changed.set()

    def unassign(self, camera_id: str) -> None:
        with self._lock:
            self.assignments.pop(camera_id, None)
        self.changed.set()

    def set_status(self, camera_id: str, status: dict[str, object]) -> None:
        """What an in-process worker reports."""
        with self._lock:
            self.statuses[camera_id] = dict(status)

    def status(self, camera_ids: list[str]) -> dict[str, dict[str, object]]:
        with self._lock:
            return {cid: dict(self.statuses[cid]) for cid in camera_ids if cid in self.statuses}


def _parse_status(camera_id: str, value: bytes | str) -> dict[str, object]:
    try:
        parsed = json.loads(value)
    except ValueError:
        return {"state": "unknown", "error": f"unparseable status for {camera_id}"}
    return parsed if isinstance(parsed, dict) else {"state": str(parsed)}
