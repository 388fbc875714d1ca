"""The photos a preview server shows, named by id (a relative POSIX path) and nothing
else, and the ``--folder`` settings manifest: one JSONL row of options per photo, in the
format ``photo3d batch`` reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from ..errors import Photo3DError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
MANIFEST_NAME = "photo3d_manifest.jsonl"


def safe_relative(name: str) -> PurePosixPath:
    """A photo id as a relative POSIX path; refuses absolute paths, ``..`` and odd characters."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        raise Photo3DError("image must be a non-empty relative path")
    if "\\" in name or "\x00" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise Photo3DError(f"image {name!r} must be a relative path inside the folder")
    rel = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in rel.parts):
        raise Photo3DError(f"image {name!r} may not contain '..' or '.' components")
    return rel


def list_photos(root: Path) -> list[str]:
    """Relative POSIX paths of the photos under ``root`` whose real path stays inside it
    (symlinks out of the folder are skipped; symlinked directories are not followed)."""
    real_root = root.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(real_root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            real = p.resolve()
            if not real.is_relative_to(real_root) or not real.is_file():
                continue
            found.append(p.relative_to(real_root).as_posix())
    return found


class SettingsManifest:
    """The JSONL manifest ``--folder`` saves per-photo options in. ``image`` of a row is
    relative to the manifest's folder (what ``photo3d batch`` expects), which is the photo
    folder unless --manifest puts it elsewhere. Not thread-safe: the caller locks."""

    def __init__(self, path: Path, root: Path, photos: list[str]) -> None:
        self.path, self.root, self.photos = path, root, photos

    def image(self, photo: str) -> str:
        """A photo id as the manifest names it."""
        return Path(os.path.relpath(self.root / safe_relative(photo), self.path.parent)).as_posix()

    def read(self) -> dict[str, dict]:
        """Rows by photo id (later rows win); {} when the file does not exist yet. Rows
        about other files are kept as they are (under their own ``image``)."""
        rows: dict[str, dict] = {}
        if not self.path.exists():
            return rows
        ids = {self.image(p): p for p in self.photos}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise Photo3DError(f"manifest {self.path} line {n} is not JSON; fix or delete it") from None
            if isinstance(row, dict) and isinstance(row.get("image"), str):
                rows[ids.get(row["image"], row["image"])] = row
        return rows

    def save(self, photo: str, options: dict) -> dict:
        """Store one photo's (checked) options, atomically: one row per photo, updated in
        place. Returns the row."""
        row = {"image": self.image(photo), **options}
        rows = self.read()
        rows[photo] = row
        tmp = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        try:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        return row
