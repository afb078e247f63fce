"""Reading the releases: layout checks, images, JSON, arrays, atomic writes.

Every error names the file and, where there is one, the record, so that a
corrupt download can be found and fixed without a debugger.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["require", "listing", "read_image", "read_json", "check_array", "atomic_write", "atomic_write_json"]


def listing(folder: Path, limit: int = 12) -> str:
    """The top-level entries of ``folder`` for an error message."""
    if not folder.exists():
        return f"{folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return f"{folder} is empty"
    more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"{folder} contains: " + ", ".join(names[:limit]) + more


def require(path: Path, root: Path, release: str, kind: str = "file") -> Path:
    """Check that ``path`` exists (a file or a folder) before anything is read.

    Args:
        path: The expected path.
        root: The folder the user passed; its listing goes into the message.
        release: The official release by name, e.g. ``"RHD_v1-1.zip"``.
        kind: ``"file"`` or ``"folder"``.

    Returns:
        ``path``.

    Raises:
        FileNotFoundError: naming the expected path, what was found instead and the release.
    """
    ok = path.is_file() if kind == "file" else path.is_dir()
    if not ok:
        found = listing(path.parent) if path.parent != root else listing(root)
        if path.parent != root:
            found += f"; {listing(root)}"
        raise FileNotFoundError(
            f"expected the {kind} {path} ({found}). Unpack the official release {release} so that this path exists "
            f"(see docs/real_datasets.md)"
        )
    return path


def read_image(path: Path, record: str) -> torch.Tensor:
    """Read an image as RGB.

    Args:
        path: Image file.
        record: Which record refers to it, for the error message.

    Returns:
        ``(3, H, W)`` float in [0, 1].

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: PIL cannot decode it (truncated or not an image).
    """
    if not path.is_file():
        raise FileNotFoundError(f"image {path} of record {record} does not exist")
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.uint8)  # (H, W, 3); convert() forces the full decode
    except (OSError, SyntaxError, ValueError) as err:  # PIL raises all three for broken files
        raise ValueError(f"cannot read image {path} of record {record}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0


def read_json(path: Path) -> Any:
    """Parse a JSON file; a truncated or invalid file names itself and the position."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON (truncated download?): {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a UTF-8 JSON file: {err}") from err


def check_array(value: Any, shape: Sequence[int], where: str, *, finite: bool = True) -> np.ndarray:
    """Convert an annotation to a float64 array and check its shape and values.

    Args:
        value: Nested lists or an array.
        shape: The exact expected shape.
        where: ``"file, record, field"`` for the message.
        finite: Reject NaN and infinite values.

    Returns:
        The array, float64.

    Raises:
        ValueError: Wrong shape, not numeric, or non-finite values.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: expected numbers of shape {tuple(shape)}, got {_describe(value)}") from err
    if array.shape != tuple(shape):
        raise ValueError(f"{where}: expected shape {tuple(shape)}, got {array.shape}")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{where}: contains NaN or infinite values")
    return array


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    A temporary file in the same folder is written, flushed and then renamed
    with ``os.replace`` (atomic on POSIX and Windows); an interrupted run
    leaves at most a stray ``*.tmp`` file, never a truncated ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    """:func:`atomic_write` of ``value`` as JSON."""
    atomic_write(path, json.dumps(value).encode("utf-8"))
