"""Face detection: facenet-pytorch MTCNN on a downscaled copy, plus tracking-guided refinement.

``MtcnnDetector`` searches whole frames (on a copy whose long side is ``long_side``; boxes are
mapped back to source pixels) and filters on probability, minimum size and blur.
``TrackingGuidedDetector`` uses tracking to shrink detection: each face of the previous frame is
re-scored and refined with MTCNN's own output network (O-net, the detector's last stage) on its
previous square box, and whole-frame searches run in the background every ``full_every``
frames (or at once when a stably followed face is lost) and are merged a fixed number of frames
later.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch

from worker.errors import ConfigError
from worker.geometry import crop_square, iou, square
from worker.settings import DetectSettings
from worker.types import Detections, FaceBox, Frame

logger = logging.getLogger(__name__)

_SAME_FACE_IOU = 0.3  # boxes overlapping more than this are the same face


class FaceDetector(Protocol):
    """Finds faces in a batch of frames (one ``Detections`` per frame, same order)."""

    def detect(self, frames: list[Frame]) -> list[Detections]: ...


def pick_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is a clear error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA device")
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def blur_score(image: np.ndarray, box: FaceBox) -> float:
    """Variance of the Laplacian of the face region (grey); low = blurred."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box.x1)), max(0, int(box.y1))
    x2, y2 = min(w, int(np.ceil(box.x2))), min(h, int(np.ceil(box.y2)))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    grey = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _to_boxes(raw_boxes: object, raw_probs: object, scale: float) -> list[FaceBox]:
    """facenet returns object-dtype arrays (or None): cast and map back to source pixels."""
    if raw_boxes is None or raw_probs is None:
        return []
    boxes = np.asarray(raw_boxes, dtype=np.float64).reshape(-1, 4) / scale
    probs = np.asarray(raw_probs, dtype=np.float64).reshape(-1)
    return [
        FaceBox(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(p))
        for b, p in zip(boxes, probs, strict=True)
    ]


@dataclass(frozen=True)
class _Followed:
    """A face being followed and for how many consecutive frames it has been."""

    box: FaceBox
    age: int


@dataclass
class _CameraMemory:
    faces: tuple[_Followed, ...]
    shape: tuple[int, ...]
    since_search: int = 0
    pending: Future[list[FaceBox]] | None = None
    pending_age: int = 0
    eager_left: int = 0  # frames left in which to search at every chance (a face was lost)


class MtcnnDetector:
    """Whole-frame MTCNN search on a downscaled copy, filtered by probability, size and blur."""

    def __init__(self, settings: DetectSettings, device: str = "auto") -> None:
        from facenet_pytorch import MTCNN

        self.settings = settings
        self.device = pick_device(device)
        self.mtcnn = MTCNN(keep_all=True, device=self.device, min_face_size=20)
        # Channels-last weights make every conv/pool of P-, R- and O-net run channels-last
        # (bench gallery: same boxes to 1e-4 px; a 960x540 search on one thread took 0.84 s
        # of CPU instead of 1.37 s).
        self.mtcnn.to(memory_format=torch.channels_last)
        self.mtcnn.eval()
        logger.info("MTCNN on %s, detect long side %d", self.device, settings.long_side)

    def _scale(self, image: np.ndarray) -> float:
        return min(1.0, self.settings.long_side / max(image.shape[:2]))

    def keep(self, image: np.ndarray, box: FaceBox, min_prob: float) -> bool:
        """The filters: probability, minimum side in source pixels, blur."""
        if box.prob < min_prob or box.side < self.settings.min_face_px:
            return False
        return self.settings.min_blur <= 0 or blur_score(image, box) >= self.settings.min_blur

    def search(self, images: list[np.ndarray]) -> list[list[FaceBox]]:
        """Full search of BGR images; same-size images go through MTCNN as one batch."""
        out: list[list[FaceBox] | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            scale = self._scale(images[indices[0]])
            # MTCNN's min face is in the searched copy: keep it at the source-pixel minimum.
            self.mtcnn.min_face_size = max(12, int(self.settings.min_face_px * scale))
            small = [self._prepare(images[i], scale) for i in indices]
            with torch.inference_mode():
                raw_boxes, raw_probs = self.mtcnn.detect(small)
            for j, i in enumerate(indices):
                found = _to_boxes(raw_boxes[j], raw_probs[j], scale)
                out[i] = [b for b in found if self.keep(images[i], b, self.settings.min_prob)]
        return [boxes or [] for boxes in out]

    @staticmethod
    def _prepare(image: np.ndarray, scale: float) -> np.ndarray:
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # MTCNN expects RGB

    def refine(self, image: np.ndarray, priors: list[FaceBox]) -> list[FaceBox | None]:
        """Re-score and regress each prior box with MTCNN's O-net (None where it fails)."""
        if not priors:
            return []
        squares = [square(b) for b in priors]
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        patches = np.stack([crop_square(rgb, sq, 48) for sq in squares])  # (N, 48, 48, 3)
        data = torch.as_tensor(patches, device=self.device).permute(0, 3, 1, 2).float()
        data = (data - 127.5) * 0.0078125  # (N, 3, 48, 48), MTCNN's normalisation
        with torch.inference_mode():
            reg, _landmarks, prob = self.mtcnn.onet(data)
        reg_np, prob_np = reg.cpu().numpy(), prob[:, 1].cpu().numpy()
        refined: list[FaceBox | None] = []
        for prior, (x1, y1, x2, y2), d, p in zip(priors, squares, reg_np, prob_np, strict=True):
            w, h = x2 - x1 + 1, y2 - y1 + 1
            # O-net moves the box; its size stays the prior's (iterating O-net's size
            # regression on its own output drifts: boxes grow ~2 % a frame).
            cx = (x1 + d[0] * w + x2 + d[2] * w) / 2.0
            cy = (y1 + d[1] * h + y2 + d[3] * h) / 2.0
            hw, hh = (prior.x2 - prior.x1) / 2.0, (prior.y2 - prior.y1) / 2.0
            box = FaceBox(cx - hw, cy - hh, cx + hw, cy + hh, float(p))
            refined.append(box if self.keep(image, box, self.settings.refine_min_prob) else None)
        return refined


class TrackingGuidedDetector:
    """Track-refinement every frame; full MTCNN searches in the background, merged on schedule.

    Per camera: the first frame (or a frame of a new size) is searched synchronously. After
    that each frame's faces are the previous faces refined by O-net on this frame (about 1 ms
    a face), and a full search of the current frame is started in a background thread every
    ``full_every`` frames. Its result is merged exactly ``merge_after`` frames later (waiting
    for it if needed): faces it found that no current box covers are refined on the current
    frame and added. Because the schedule counts frames, not seconds, the same frames always
    give the same detections, live or offline; and the search overlaps the model instead of
    stalling the stream.

    Eager searching: when a *stably followed* face fails refinement (one followed for at least
    ``stable_after`` consecutive frames, default ``2 * full_every``), a search starts at once
    and then at every chance (one search in flight at a time, so at most one per
    ``merge_after`` frames) for ``2 * full_every`` frames, so a face back from an occlusion
    keeps its track. A face that only flickers in and out (a marginal face found by some
    searches and lost again within a few frames), or one lost before it was followed that
    long, does not start it: the regular searches look for it again, at most ``full_every +
    merge_after`` frames later. Without that rule one marginal face in the 30-face bench
    gallery kept eager searching going and the search rate at 0.33 a frame instead of 0.25.
    ``full_searches`` counts searches started (synchronous ones included).
    """

    def __init__(
        self,
        base: MtcnnDetector,
        full_every: int,
        merge_after: int = 2,
        stable_after: int | None = None,
    ) -> None:
        self.base = base
        self.full_every = full_every
        self.merge_after = max(1, merge_after)
        self.stable_after = 2 * full_every if stable_after is None else stable_after
        self._memory: dict[str, _CameraMemory] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="full-search")
        self.full_searches = 0
        self.refinements = 0

    def forget(self, camera_id: str) -> None:
        """Drop a camera's memory (source restarted or camera released)."""
        mem = self._memory.pop(camera_id, None)
        if mem is not None and mem.pending is not None:
            mem.pending.cancel()

    def settle(self) -> None:
        """Wait until no background search is running (their results stay for their merge)."""
        wait([mem.pending for mem in list(self._memory.values()) if mem.pending is not None])

    def close(self) -> None:
        """Stop the background search thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def detect(self, frames: list[Frame]) -> list[Detections]:
        """Detections for each frame; synchronous searches are batched across cameras."""
        sync = [
            i
            for i, f in enumerate(frames)
            if (mem := self._memory.get(f.camera_id)) is None or mem.shape != f.image.shape
        ]
        results: dict[int, Detections] = {}
        if sync:
            found = self.base.search([frames[i].image for i in sync])
            for i, boxes in zip(sync, found, strict=True):
                f = frames[i]
                faces = tuple(_Followed(b, 0) for b in boxes)
                self._memory[f.camera_id] = _CameraMemory(faces, f.image.shape)
                results[i] = Detections(f, tuple(boxes), full=True)
                self.full_searches += 1
        for i, f in enumerate(frames):
            if i not in results:
                results[i] = Detections(f, self._follow(f), full=False)
        return [results[i] for i in range(len(frames))]

    def _follow(self, frame: Frame) -> tuple[FaceBox, ...]:
        mem = self._memory[frame.camera_id]
        refined = self.base.refine(frame.image, [f.box for f in mem.faces])
        pairs = list(zip(mem.faces, refined, strict=True))
        alive = [_Followed(b, f.age + 1) for f, b in pairs if b is not None]
        lost = any(b is None and f.age >= self.stable_after for f, b in pairs)
        kept = _dedupe(alive)
        self.refinements += 1
        mem.since_search += 1
        if mem.pending is not None:
            mem.pending_age += 1
            if mem.pending_age >= self.merge_after:
                found = mem.pending.result()
                mem.pending = None
                kept = self._merge(frame.image, kept, found)
        if lost:
            mem.eager_left = 2 * self.full_every
        mem.eager_left = max(0, mem.eager_left - 1)
        if mem.pending is None and (lost or mem.eager_left or mem.since_search >= self.full_every):
            mem.pending = self._pool.submit(self._search_one, frame.image)
            mem.pending_age, mem.since_search = 0, 0
            self.full_searches += 1
        mem.faces = tuple(kept)
        return tuple(f.box for f in kept)

    def _search_one(self, image: np.ndarray) -> list[FaceBox]:
        return self.base.search([image])[0]

    def _merge(
        self, image: np.ndarray, kept: list[_Followed], found: list[FaceBox]
    ) -> list[_Followed]:
        """Searched faces (refined onto the current frame) replace the followed faces they
        overlap, which re-anchors box sizes (the face keeps its age); followed faces the
        search missed stay."""
        fresh = sorted(
            (b for b in self.base.refine(image, found) if b is not None), key=lambda b: -b.prob
        )
        renewed = [
            _Followed(b, max((k.age for k in kept if iou(b, k.box) > _SAME_FACE_IOU), default=0))
            for b in fresh
        ]
        return _dedupe(renewed + kept, by_prob=False)


def _dedupe(
    faces: list[_Followed], iou_max: float = _SAME_FACE_IOU, *, by_prob: bool = True
) -> list[_Followed]:
    """Drop faces on the same face: keep the more probable, or the earlier in the list."""
    kept: list[_Followed] = []
    for face in sorted(faces, key=lambda f: -f.box.prob) if by_prob else faces:
        if all(iou(face.box, k.box) <= iou_max for k in kept):
            kept.append(face)
    return sorted(kept, key=lambda f: (f.box.y1, f.box.x1))
