"""The files of a run: atomic writes, JSON, the metrics log, folder locks, checkpoint reading, clear errors.

Files of a run directory ``<out>/<run_name>/``: ``config.json`` (the
settings that run), ``metrics.jsonl`` (one JSON object per line: training
losses and evaluations), ``last.pt`` (everything needed to resume),
``iter_XXXXXXX.pt`` (periodic model-only snapshots), ``final.json`` and
``.lock``. The pre-training cache keeps only ``last.pt`` (to resume),
``model.pt``, its log and its ``.lock``.

Concurrent runs: every file is written through a temporary file of its own
(``.<name>.<pid>.<random>.tmp``, removed when a write fails) and renamed into
place; a log line is one append. A run holds its folder's lock (a second
process on the same folder stops with :class:`RunInUseError`), and runs that
need the same pre-training at once take turns on the cache's lock: one trains
it, the others wait (saying so on stderr) and read its ``model.pt``.

Every way a file can be unusable is one error that names the file and says
why: :class:`RunFileError` (an ``OSError``: cannot be created, written or
read), :class:`CheckpointError` (a ``ValueError``: not a checkpoint that fits)
and :class:`RunInUseError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no flock (see locked)
    fcntl = None  # type: ignore[assignment]

import torch

__all__ = [
    "CheckpointError",
    "RunFileError",
    "RunInUseError",
    "append_log",
    "atomic_save",
    "atomic_write",
    "check_keys",
    "load_weights",
    "locked",
    "make_dir",
    "read_checkpoint",
    "read_json",
    "truncate_log",
    "write_json",
]


class CheckpointError(ValueError):
    """A checkpoint cannot be used: empty, truncated, not written by ``torch.save``, or not a regdakit one that fits."""


class RunInUseError(ValueError):
    """Another process is writing the same run folder."""


class RunFileError(OSError):
    """A file or folder of a run cannot be created, written or read; the message names it and says why.

    ``errno`` is the operating system's (``errno.ENOSPC`` for a full disk), when there is one.
    """


def read_json(path: Path, not_json: str, consequence: str = "") -> Any:
    """The JSON in ``path``; ``ValueError("<not_json> (<parser error>)[: <consequence>]")`` when it is not JSON.

    Raises:
        ValueError: Not UTF-8 or not JSON.
        RunFileError: The file cannot be read (:func:`_file_error`).
    """
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{not_json} ({err})" + (f": {consequence}" if consequence else "")) from None
    except OSError as err:
        raise _file_error("read", path, err) from err


def _file_error(action: str, path: Path, err: OSError) -> RunFileError:
    """``err`` as a :class:`RunFileError` "cannot <action> <path>: <why>", with a hint for a full disk."""
    cause = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        cause += " (the disk is full: free space, then resume)"
    out = RunFileError(f"cannot {action} {path}: {cause}")
    out.errno = err.errno
    return out


def make_dir(path: Path, what: str) -> None:
    """``mkdir -p path``, with one clear error for a file in the way or a folder that cannot be written."""
    for part in (*reversed(path.parents), path):
        if part.exists() and not part.is_dir():
            where = "is" if part == path else f"cannot be created: {part} is"
            raise RunFileError(f"{what} {path} {where} a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _file_error(f"create {what}", path, err) from err


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` through a temporary file of its own, then rename it into place.

    The temporary file lies in the same folder (the rename is atomic) under a name no other process or
    call uses (``.<name>.<pid>.<random>.tmp``), so concurrent runs never share one, and it is removed
    when the write fails or is interrupted: a reader sees the old ``path`` or the new one, never a part.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise _file_error("write", path, err) from err
        raise


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` without ever leaving a truncated ``path`` (:func:`atomic_write`)."""
    # Saving through the open file, not by name: a full disk is then an OSError (ENOSPC), not torch's
    # "unexpected pos" from its zip writer.
    atomic_write(path, lambda fh: torch.save(obj, fh))


def write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON to ``path``, atomically (:func:`atomic_write`)."""
    _write_text(path, json.dumps(obj, indent=2) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    data = text.encode()
    atomic_write(path, lambda fh: fh.write(data))


@contextlib.contextmanager
def locked(folder: Path, *, wait: bool, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/.lock`` while the block runs (``fcntl.flock``).

    The operating system releases the lock when its holder ends, even by a crash or ``kill -9``, so no
    stale lock ever blocks a run. The file keeps the holder's process id, for the message of a waiting run.
    Without ``fcntl`` (Windows) nothing is locked. ``flock`` may not lock across machines on a network
    file system: concurrent runs on several machines need their own ``out``.

    Args:
        folder: An existing folder.
        wait: Wait for the holder (saying so on stderr) instead of raising :class:`RunInUseError`.
        what: How messages name the folder.
    """
    if fcntl is None:
        yield
        return
    path = folder / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise _file_error("create the lock file", path, err) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            holder = f" (process {holder})" if holder.isdigit() else ""
            if not wait:
                raise RunInUseError(
                    f"{what} {folder} is in use by another run{holder}: wait for it, or choose another run_name / out"
                ) from None
            print(f"regdakit: waiting for another run{holder} to finish {what} {folder}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def read_checkpoint(path: Path, map_location: torch.device | str, what: str) -> Any:
    """``torch.load`` of a file the run needs, with one clear error for each way it can be unusable.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: A directory, an empty file, or not a complete file written by ``torch.save``.
        RunFileError: The file cannot be read (permissions, I/O error).
    """
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a directory, not a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a foreign pickle's protocol: the error below says it all
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        raise _file_error(f"read {what}", path, err) from err
    except Exception as err:  # noqa: BLE001 - torch.load fails with EOFError, RuntimeError, UnpicklingError...
        empty = path.stat().st_size == 0
        why = "it is empty" if empty else f"truncated, corrupted, or not written by torch.save ({type(err).__name__})"
        raise CheckpointError(f"{what} {path} cannot be loaded: {why}") from err


def check_keys(state: Any, path: Path, what: str, keys: Iterable[str]) -> dict[str, Any]:
    """``state`` if it is a dict with ``keys``, else a :class:`CheckpointError` that says what it lacks."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} is not a regdakit checkpoint (it holds a {type(state).__name__})")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            f"{what} {path} is not a regdakit checkpoint (no {' / '.join(repr(k) for k in missing)}; "
            f"it has {', '.join(repr(k) for k in list(state)[:5]) or 'nothing'})"
        )
    return state


def load_weights(
    model: torch.nn.Module, weights: Any, path: Path, what: str, *, prefixes: tuple[str, ...] = ()
) -> None:
    """Load ``weights`` (the entries under ``prefixes``, or all) into ``model``; a clear error when they do not fit."""
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{what} {path} holds no model weights (a dict of tensors)")
    expected = {k: v for k, v in model.state_dict().items() if not prefixes or k.startswith(prefixes)}
    given = {k: v for k, v in weights.items() if not prefixes or k.startswith(prefixes)}
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    shapes = sorted(k for k in set(given) & set(expected) if given[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {name} (e.g. {v[0]})" for name, v in (("missing", missing), ("unexpected", unexpected),
                                                                   ("of another shape", shapes)) if v]  # fmt: skip
        raise CheckpointError(f"{what} {path} does not fit this run's model: weights {'; '.join(parts)}")
    model.load_state_dict(given, strict=not prefixes)


def append_log(path: Path, record: Mapping[str, Any]) -> None:
    """Append one line in one ``write`` to a file opened with ``O_APPEND``: a line is never split or interleaved."""
    data = (json.dumps(record) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
    except OSError as err:
        raise _file_error("append to", path, err) from err


def truncate_log(path: Path, iteration: int) -> list[dict[str, Any]]:
    """Drop the records written after the checkpoint we resume from (they will be written again); the kept ones.

    A log line is written before the checkpoint of its iteration, so the one line an interruption can tear
    (the last, without its newline or unparsable) is always past the checkpoint: it is dropped with the
    others. A damaged line before it, or a torn one that says it belongs before the checkpoint, is an error
    that names the file and the line: the log no longer matches the run.
    """
    if not path.exists():
        return []
    try:
        lines = path.read_text(errors="replace").split("\n")
    except OSError as err:
        raise _file_error("read", path, err) from err
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    kept, records, changed = [], [], False
    for n, line in numbered:
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("iteration"), int):
                raise ValueError("no iteration")
        except ValueError:
            stamp = re.search(r'"iteration": (\d+)', line)
            if n == numbered[-1][0] and not (stamp and int(stamp.group(1)) <= iteration):
                changed = True  # the torn last line of an interrupted run
                continue
            raise ValueError(
                f"the metrics log {path} is damaged at line {n} (not a JSON record: {line[:60]!r}): "
                f"repair or delete that line to resume from iteration {iteration}"
            ) from None
        if record["iteration"] <= iteration:
            kept.append(line)
            records.append(record)
        else:
            changed = True
    if changed:
        _write_text(path, "".join(line + "\n" for line in kept))
    return records
