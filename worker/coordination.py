"""Coordination through Redis: camera assignments, leases, heartbeat and camera status.

Cameras come from the service through Redis (hash ``contract.keys.CAMERAS_HASH``: camera_id ->
CameraAssignment JSON) and/or from the static list in settings. Every worker tries to hold a
lease per camera (``SET lease NX PX ttl`` with its worker id as value, renewed every period
by a compare-and-set script); a camera is analysed only by its lease holder, so when a worker
dies its leases expire and another worker takes the camera within ``lease_ttl_s`` plus one
period. Without Redis (``redis_url`` None) the static cameras are simply all analysed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, cast

import redis
from pydantic import ValidationError

from contract import CameraAssignment
from contract.keys import CAMERA_STATUS_HASH, CAMERAS_HASH, heartbeat_key, lease_key
from worker.types import CameraState

logger = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Coordinator:
    """Which cameras this worker should analyse now."""

    def __init__(
        self,
        worker_id: str,
        client: redis.Redis | None,
        *,
        static: list[CameraAssignment],
        from_redis: bool = True,
        lease_ttl_s: float = 6.0,
        heartbeat_ttl_s: float = 10.0,
        max_cameras: int = 16,
    ) -> None:
        self.worker_id, self.client = worker_id, client
        self.static = {c.camera_id: c for c in static}
        self.from_redis = from_redis and client is not None
        self.lease_ms = int(lease_ttl_s * 1000)
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.max_cameras = max_cameras
        self.held: dict[str, CameraAssignment] = {}
        self.redis_ok = client is not None
        self.bad_assignments: dict[str, str] = {}

    def desired(self) -> dict[str, CameraAssignment]:
        """Static cameras plus the service's assignments (Redis wins on the same id)."""
        cams = dict(self.static)
        if self.from_redis and self.client is not None:
            raw: dict[bytes, bytes] = self.client.hgetall(CAMERAS_HASH)  # type: ignore[assignment]
            self.bad_assignments = {
                k: v for k, v in self.bad_assignments.items() if k.encode() in raw
            }
            for key, value in raw.items():
                cam_id = key.decode()
                try:
                    cams[cam_id] = CameraAssignment.model_validate_json(value)
                    self.bad_assignments.pop(cam_id, None)
                except ValidationError as exc:
                    if self.bad_assignments.get(cam_id) != str(exc):
                        logger.error(
                            "camera assignment %s in %s is invalid: %s", cam_id, CAMERAS_HASH, exc
                        )
                    self.bad_assignments[cam_id] = str(exc)
        return cams

    def sync(self) -> dict[str, CameraAssignment]:
        """Renew/acquire leases and the heartbeat; returns the cameras to analyse now.

        When Redis is unreachable the worker keeps what it holds and adds its static cameras
        (better analysed twice than not at all); leases are taken again once Redis answers,
        and a camera whose lease another worker holds by then is given up.
        """
        if self.client is None:
            self.held = dict(list(self.static.items())[: self.max_cameras])
            return self.held
        try:
            self._sync_redis()
        except redis.RedisError as exc:
            for cam_id, cam in self.static.items():
                if cam_id not in self.held and len(self.held) < self.max_cameras:
                    self.held[cam_id] = cam
            if self.redis_ok:
                logger.warning(
                    "Redis unreachable (%s); analysing %d held/static cameras without leases",
                    exc,
                    len(self.held),
                )
            self.redis_ok = False
        return dict(self.held)

    def _sync_redis(self) -> None:
        assert self.client is not None
        client = self.client
        desired = self.desired()
        if not self.redis_ok:
            logger.info("Redis reachable again")
        self.redis_ok = True
        client.set(
            heartbeat_key(self.worker_id), str(time.time()), px=int(self.heartbeat_ttl_s * 1000)
        )
        held: dict[str, CameraAssignment] = {}
        for cam_id in list(self.held):
            if cam_id in desired and client.eval(
                _RENEW, 1, lease_key(cam_id), self.worker_id, self.lease_ms
            ):
                held[cam_id] = desired[cam_id]
            else:
                if cam_id in desired:
                    logger.warning("lost the lease of camera %s", cam_id)
                client.eval(_RELEASE, 1, lease_key(cam_id), self.worker_id)
        for cam_id, cam in sorted(desired.items()):
            if cam_id in held or len(held) >= self.max_cameras:
                continue
            if client.set(lease_key(cam_id), self.worker_id, nx=True, px=self.lease_ms):
                logger.info("acquired camera %s", cam_id)
                held[cam_id] = cam
        self.held = held

    def write_status(self, states: list[CameraState]) -> None:
        """Camera status for the dashboard (CAMERA_STATUS_HASH: camera_id -> JSON)."""
        if self.client is None:
            return
        states = states + [
            CameraState(cam_id, "failed", 0, 0, 0, f"invalid assignment: {err}")
            for cam_id, err in self.bad_assignments.items()
        ]
        if not states:
            return
        now = time.time()
        mapping = {
            s.camera_id: json.dumps(
                {
                    "state": s.state,
                    "reconnects": s.reconnects,
                    "frames_read": s.frames_read,
                    "frames_dropped": s.frames_dropped,
                    "last_error": s.last_error,
                    "worker_id": self.worker_id,
                    "updated": now,
                }
            )
            for s in states
        }
        try:
            self.client.hset(CAMERA_STATUS_HASH, mapping=cast(Any, mapping))
        except redis.RedisError as exc:
            logger.debug("camera status not written: %s", exc)

    def release_all(self) -> None:
        """Give every lease back and remove the heartbeat (graceful shutdown)."""
        if self.client is None:
            return
        try:
            for cam_id in self.held:
                self.client.eval(_RELEASE, 1, lease_key(cam_id), self.worker_id)
            self.client.delete(heartbeat_key(self.worker_id))
        except redis.RedisError as exc:
            logger.warning("could not release leases (%s); they expire by themselves", exc)
        self.held = {}
