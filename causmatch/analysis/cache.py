"""On-disk cache of arrays (encoded gallery, similarity matrices), safe against stale and torn files.

Public API::

    cache_key(*parts) -> str                      # sha256 of the JSON of the parts
    ArrayCache(root: str | Path | None, read_only=False)   # root None -> disabled (every load misses)
        .load(name, key, mmap=False) -> dict[str, np.ndarray] | None
        .has(name, key) -> bool                    # an entry built for key is there (reads only its key)
        .save(name, key, arrays: dict[str, np.ndarray]) -> Path | None   # read_only: a no-op (None)
        .path(name) -> Path | None
        .entries() -> list[str]

An entry is one uncompressed ``.npz`` file ``<root>/<name>.npz`` that also stores the key it was
built for. ``load`` returns None (a miss, so the caller rebuilds) when the file is absent, when
its stored key differs (stale: the checkpoint, the data or the intervention changed), or when it
cannot be read back completely (zip CRC-32 checks every member, so a truncated or corrupted file is
detected). ``save`` writes a temporary file in the same folder, fsyncs it and ``os.replace``s it
over the entry (:func:`causmatch.outputs.atomic_write`): a reader sees the old entry or the new one, never
half of one, and a write that is interrupted leaves only a temporary file that ``load`` never opens (a
later ``save`` removes it once its writer is gone).

``load(..., mmap=True)`` maps the large arrays of the file copy-on-write instead of reading them (an entry of
gigabytes opens at once and only the pages used are read; the arrays are writable, writes stay private). A
stale key and a truncated file are still misses; the CRC of a mapped member is not checked (it would read it
all) — only an entry whose file was damaged after its atomic write could go unnoticed.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
import time
import zipfile
from pathlib import Path

import numpy as np

from causmatch.errors import DataError
from causmatch.outputs import atomic_write, os_error, remove_dead_temps

_KEY_FIELD = "__cache_key__"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.,=+-]+$")
CACHE_FORMAT = 1  # bump when the meaning of a cached array changes


def cache_key(*parts) -> str:
    """A stable hex key for JSON-serialisable parts (fingerprints, intervention parameters...)."""
    blob = json.dumps([CACHE_FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ArrayCache:
    """A folder of keyed ``.npz`` entries; ``root=None`` disables it (loads miss, saves are no-ops)."""

    def __init__(self, root: str | Path | None, read_only: bool = False):
        self.root = None if root is None else Path(root)
        self.read_only = bool(read_only)  # loads only: another process (rank 0 of ``causmatch cache``) writes
        if self.root is not None and self.root.exists() and not self.root.is_dir():
            raise DataError(f"the cache folder {self.root} is a file — give a folder (it is created if missing)")
        if self.root is not None and not self.read_only:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise DataError(f"cannot create cache folder {self.root} ({err.strerror}) — "
                                "pick a writable --cache-dir") from None

    def path(self, name: str) -> Path | None:
        if not _NAME_RE.match(name):
            raise ValueError(f"bad cache entry name {name!r}")  # programming error, not user input
        return None if self.root is None else self.root / f"{name}.npz"

    def entries(self) -> list[str]:
        if self.root is None:
            return []
        return sorted(p.stem for p in self.root.glob("*.npz"))

    def load(self, name: str, key: str, mmap: bool = False) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``name`` if they were built for ``key``; None otherwise. ``mmap``: map
        the large members instead of reading them (module docstring)."""
        path = self.path(name)
        if path is None or not path.is_file():
            return None
        if mmap:
            try:
                return _load_mapped(path, key)
            except _NotMappable:
                pass  # read it as usual below
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, struct.error):
                return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                if _KEY_FIELD not in npz.files or str(npz[_KEY_FIELD]) != key:
                    return None  # stale: built for another checkpoint / dataset / intervention
                return {k: npz[k] for k in npz.files if k != _KEY_FIELD}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
            return None  # unreadable or torn (CRC mismatch): treat as a miss, the caller rebuilds

    def has(self, name: str, key: str) -> bool:
        """True when the entry ``name`` is there and was built for ``key`` (its other arrays are not read;
        a torn file is a zip without its directory, so it is not there)."""
        path = self.path(name)
        if path is None or not path.is_file():
            return False
        try:
            with np.load(path, allow_pickle=False) as npz:
                return _KEY_FIELD in npz.files and str(npz[_KEY_FIELD]) == key
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
            return False

    def save(self, name: str, key: str, arrays: dict[str, np.ndarray]) -> Path | None:
        """Atomically (temp file + fsync + os.replace; :func:`causmatch.outputs.atomic_write`) store ``arrays``."""
        path = self.path(name)
        if path is None or self.read_only:
            return None
        self._remove_temps(name)
        try:
            atomic_write(path, lambda fh: np.savez(fh, **{_KEY_FIELD: np.array(key)}, **arrays), label="cache")
        except OSError as err:
            raise os_error(err, path, "write the cache entry") from None
        return path

    def _remove_temps(self, name: str, min_age_s: float = 600.0) -> None:
        """Leftovers of interrupted writes of this entry (never read; removed to free the disk).

        Only temps whose writer process is gone are removed (another process may still be writing);
        temps named as by earlier versions (``.NAME.*.tmp``) go once older than ``min_age_s``.
        """
        remove_dead_temps(self.root, prefix=f"{name}.npz")
        now = time.time()
        for stale in self.root.glob(f".{name}.*.tmp"):
            try:
                if now - stale.stat().st_mtime > min_age_s:
                    stale.unlink()
            except OSError:
                pass


_MAP_MIN_BYTES = 1 << 20  # members smaller than this are read (and CRC-checked) as usual


class _NotMappable(Exception):
    """A member stored in a way the mapping does not read (another .npy version, objects): load it whole."""


def _load_mapped(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """``np.load`` of an uncompressed ``.npz`` with its large members memory-mapped copy-on-write."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        names = zf.namelist()
        if f"{_KEY_FIELD}.npy" not in names:
            return None
        with zf.open(f"{_KEY_FIELD}.npy") as member:
            if str(np.lib.format.read_array(member, allow_pickle=False)) != key:
                return None
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name == _KEY_FIELD:
                continue
            if info.compress_type != zipfile.ZIP_STORED or info.file_size < _MAP_MIN_BYTES:
                with zf.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            fh.seek(info.header_offset)
            head = fh.read(30)
            if head[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"bad local header for {info.filename}")
            n_name, n_extra = struct.unpack("<HH", head[26:30])
            start = info.header_offset + 30 + n_name + n_extra
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in reader:
                raise _NotMappable(info.filename)
            shape, fortran, dtype = reader[version](fh)
            offset = fh.tell()
            if dtype.hasobject:
                raise _NotMappable(info.filename)
            if offset - start + dtype.itemsize * int(np.prod(shape)) != info.file_size:
                raise ValueError(f"member {info.filename} does not hold its header's array")
            out[name] = np.memmap(path, dtype=dtype, mode="c", shape=shape, offset=offset,
                                  order="F" if fortran else "C")
    return out
