"""Image sizes and missing-image bookkeeping for the readers.

Readers ask :class:`ImageSizer` for the size of each image. With ``check_images=True``
every file's header is read (a few hundred microseconds each, pixels are not decoded) and
missing files are collected; with ``check_images=False`` the files are not required: a
size declared by the format is trusted, otherwise one header per ``group`` is read and
reused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import DataFormatError
from ..image_decode import upright_size
from .parsing import list_preview

Size = Tuple[int, int]


def read_image_size(path: Path) -> Size:
    """``(width, height)`` as decoded (EXIF orientation applied) from the file header;
    unreadable files raise DataFormatError."""
    return upright_size(path)


class ImageSizer:
    """Finds image sizes and remembers which images are missing."""

    def __init__(self, check_images: bool = True):
        self.check_images = check_images
        self.missing: List[Path] = []
        self._group: Dict[object, Size] = {}

    def size(self, path: Path, declared: Optional[Size] = None, group: object = None,
             default: Optional[Size] = None) -> Optional[Size]:
        """The size to use for ``path``: actual when read, else declared / group / default."""
        path = Path(path)
        if self.check_images:
            if not path.exists():  # a FIFO or folder named like an image is an error below, not "missing"
                self.missing.append(path)
                return declared or self._group.get(group) or default
            actual = read_image_size(path)
            self._group.setdefault(group, actual)
            return actual
        if declared is not None:
            return declared
        if group in self._group:
            return self._group[group]
        if path.is_file():
            self._group[group] = read_image_size(path)
            return self._group[group]
        return default

    def raise_if_missing(self, root: Path) -> None:
        """Raise DataFormatError listing the first few missing images and the count."""
        if self.missing:
            raise DataFormatError(missing_message(self.missing, root), path=root,
                                  hint="copy the images next to the pose files, or pass "
                                       "check_images=False / --no-check-images to inspect poses only")


def missing_message(missing: List[Path], root: Path) -> str:
    names = []
    for p in missing:
        try:
            names.append(str(Path(p).relative_to(root)))
        except ValueError:
            names.append(str(p))
    return f"{len(missing)} image(s) listed by the dataset are missing: {list_preview(names)}"
