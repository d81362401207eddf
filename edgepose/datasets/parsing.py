"""Small parsing helpers shared by the dataset readers.

Every reader reports a bad row the same way: :class:`~edgepose.errors.DataFormatError`
with the file, the 1-based line number, what was expected and what was found.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from ..errors import DataFormatError
from ..geometry import matrix_to_quat, quat_canonical, validate_quaternions
from ..image_decode import require_regular_file

#: how far from unit length a stored quaternion may be (files round to ~6 digits)
QUAT_NORM_TOL = 1e-2
#: how far ``R^T R`` of a stored rotation may be from identity (max abs entry)
ROT_ORTHO_TOL = 1e-2
#: the largest image side accepted as declared by a file (pixels)
MAX_IMAGE_SIDE = 1 << 16


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file (never opens FIFOs or devices)."""
    require_regular_file(path)
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataFormatError(f"cannot read the file ({exc.strerror})", path=path) from None


def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM and Windows line ends tolerated); regular files only."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})", path=path,
                              hint="is this the binary variant? pass the matching --format") from None


def numbered_lines(path: Path, skip_comments: bool = True) -> Iterator[Tuple[int, str]]:
    """``(line_number, stripped_text)`` of the non-empty lines; ``#`` comments skipped if asked."""
    for i, raw in enumerate(read_text(path).splitlines(), start=1):
        s = raw.strip()
        if not s or (skip_comments and s.startswith("#")):
            continue
        yield i, s


def parse_floats(tokens: Sequence[str], path: Path, line: int, expected: str) -> np.ndarray:
    """Tokens as finite float64; a bad, NaN or infinite token raises with file:line.

    No column of any supported format may be NaN or infinite, so they are refused here
    (``float("nan")`` would otherwise accept ``nan``, ``inf`` and ``1e999``).
    """
    try:
        v = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        raise DataFormatError(f"expected numbers ({expected}); found {' '.join(tokens)!r}",
                              path=path, line=line) from None
    if not np.all(np.isfinite(v)):
        bad = [t for t, x in zip(tokens, v) if not np.isfinite(x)]
        raise DataFormatError(f"expected finite numbers ({expected}); found {', '.join(bad)}", path=path,
                              line=line, hint="NaN and infinite values are refused: fix or remove this row")
    return v


def parse_int(token: str, path: Path, line, what: str, minimum: int = None) -> int:
    """An integer token (``what`` names it), at least ``minimum`` when given."""
    try:
        n = int(token)
    except (TypeError, ValueError):
        raise DataFormatError(f"expected an integer {what}; found {str(token)[:40]!r}", path=path,
                              line=line) from None
    if minimum is not None and n < minimum:
        raise DataFormatError(f"expected {what} >= {minimum}; found {n}", path=path, line=line)
    return n


def expect_columns(tokens: Sequence[str], n: int, path: Path, line: int, expected: str,
                   at_least: bool = False) -> None:
    """Raise unless the row has ``n`` columns (or at least ``n``)."""
    ok = len(tokens) >= n if at_least else len(tokens) == n
    if not ok:
        want = f"at least {n}" if at_least else f"{n}"
        raise DataFormatError(f"expected {want} columns ({expected}); found {len(tokens)}",
                              path=path, line=line)


def checked_quaternion(q: Sequence[float], path: Path, line: int, what: str = "quaternion") -> np.ndarray:
    """Reject NaN, zero and far-from-unit quaternions (``wxyz``); return it canonical."""
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # 1e300 entries: an infinite norm, refused
        ok = bool(validate_quaternions(q, tol=QUAT_NORM_TOL))
        norm = float(np.linalg.norm(q)) if np.all(np.isfinite(q)) else float("nan")
    if not ok:
        raise DataFormatError(
            f"{what} {[round(float(v), 6) for v in q]} is not a unit quaternion (norm {norm:.4g}; "
            f"expected finite with |norm - 1| <= {QUAT_NORM_TOL})", path=path, line=line,
            hint="fix or remove this row")
    return quat_canonical(q)


def checked_rotation(R: np.ndarray, path: Path, line: int, what: str = "rotation") -> np.ndarray:
    """Reject non-finite, non-orthonormal or reflecting 3x3 matrices; return the quaternion."""
    return matrix_to_quat(orthonormal_rotation(R, path, line, what))


def orthonormal_rotation(R: np.ndarray, path: Path, line: int, what: str = "rotation") -> np.ndarray:
    """Reject non-finite, non-orthonormal or reflecting 3x3 matrices; return the nearest rotation."""
    R = np.asarray(R, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(R)):
        raise DataFormatError(f"{what} matrix has NaN or inf entries", path=path, line=line)
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: inf error, refused below
        err = float(np.max(np.abs(R.T @ R - np.eye(3))))
        det = float(np.linalg.det(R))
    if err > ROT_ORTHO_TOL or det <= 0:
        raise DataFormatError(
            f"{what} matrix is not a rotation (max |R^T R - I| = {err:.3g}, det = {det:.3g}; "
            f"expected orthonormal with det +1)", path=path, line=line, hint="fix or remove this row")
    U, _, Vt = np.linalg.svd(R)
    return U @ Vt


def checked_finite(v: np.ndarray, path: Path, line: int, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise DataFormatError(f"{what} {[float(x) for x in v.ravel()]} has NaN or infinite entries; expected finite "
                              "numbers", path=path, line=line, hint="fix or remove this row")
    return v


def checked_K(fx, fy, cx, cy, path: Path, line, what: str = "intrinsics") -> np.ndarray:
    """Pinhole K of finite values with positive focal lengths; else file:line and what was found."""
    v = np.array([fx, fy, cx, cy], dtype=np.float64)
    if not np.all(np.isfinite(v)) or not (v[0] > 0 and v[1] > 0):
        raise DataFormatError(f"{what}: expected finite fx, fy > 0 and finite cx, cy; found "
                              f"fx={v[0]:g} fy={v[1]:g} cx={v[2]:g} cy={v[3]:g}", path=path, line=line)
    return pinhole_K(*v)


def checked_size(w, h, path: Path, line, what: str = "image size") -> Tuple[int, int]:
    """``(w, h)`` as positive integers (JSON numbers or text tokens); else a clear error."""
    out = []
    for name, v in (("width", w), ("height", h)):
        if isinstance(v, bool):
            v = "true"
        try:
            f = float(v)
            n = int(f) if np.isfinite(f) and f == int(f) else None
        except (TypeError, ValueError, OverflowError):
            n = None
        if n is None or n <= 0 or n > MAX_IMAGE_SIDE:
            raise DataFormatError(f"{what}: expected a positive integer {name} (at most {MAX_IMAGE_SIDE}); "
                                  f"found {str(v)[:40]!r}", path=path, line=line)
        out.append(n)
    return out[0], out[1]


def pinhole_K(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """``(3, 3)`` intrinsics in pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def scale_K(K: np.ndarray, src: Tuple[int, int], dst: Tuple[int, int]) -> np.ndarray:
    """Intrinsics of an image resized from ``src = (w, h)`` to ``dst = (w, h)``."""
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, :] *= dst[0] / src[0]
    K[1, :] *= dst[1] / src[1]
    return K


def list_preview(items: List[str], n: int = 5) -> str:
    """``"a, b, c (and 7 more)"``."""
    head = ", ".join(str(x) for x in items[:n])
    return head + (f" (and {len(items) - n} more)" if len(items) > n else "")


def sequence_of(name: str) -> str:
    """The folder part of a relative image name (``"seq1/f.png"`` -> ``"seq1"``; ``""`` if none)."""
    parent = str(Path(name.replace("\\", "/")).parent)
    return "" if parent == "." else parent
