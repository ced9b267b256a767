"""Safe outputs: the one home for how CausMatch writes files and folders.

Promises (see docs/reliability.md):

- **Files** (:func:`atomic_write`): written into a temporary sibling, flushed and fsynced, renamed over
  the target, and the folder entry fsynced. A reader sees the old file or the new one, never half of one.
- **Folders** (:func:`stage_dir` + :func:`publish_dir`): the whole new version is written into a
  temporary sibling ``.NAME.causmatch-stage-PID-XXXX``; publishing parks the old version as
  ``.NAME.causmatch-old-PID-XXXX``, renames the stage into place and only then removes the parked one.
  After a kill -9 between any two of these steps, :func:`recover_dir` (called before every write and
  every read of an output) puts a parked version back when ``NAME`` is missing and removes leftovers of
  dead writers. Only names of this form are ever deleted, so nothing a user wrote is touched.
- **Existing outputs** (:func:`check_output_dir`): an existing ``--out`` is used only when it is missing,
  an empty folder, or a previous output of the same command (recognised by its files) and the caller
  consented (``--overwrite``, or ``--resume`` for training). Anything else is a one-line error saying
  what is there.
- **OS errors** (:func:`os_error_message`, :func:`os_error`): one line naming the path and what to do.

Test-only hook: with ``CAUSMATCH_CRASH_AT=NAME`` (or ``NAME:N`` for its N-th occurrence) the process
exits with status 137 at the named step of a save sequence (:func:`crash_point`), as a kill -9 would;
``CAUSMATCH_CRASH_LOG=FILE`` appends every step name reached to ``FILE``, so tests can crash at each.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from pathlib import Path

from causmatch.errors import DataError

CRASH_ENV, CRASH_LOG_ENV = "CAUSMATCH_CRASH_AT", "CAUSMATCH_CRASH_LOG"
_LEFTOVER_RE = re.compile(r"^\.(?P<name>.+)\.causmatch-(?P<kind>stage|old|tmp)-(?P<pid>\d+)-[0-9a-f]{8}(\.tmp)?$")
_crash_counts: dict[str, int] = {}


# ---------------------------------------------------------------- test-only crash hook
def crash_point(name: str) -> None:
    """A named step of a save sequence: exit like kill -9 here when ``CAUSMATCH_CRASH_AT`` names it."""
    log = os.environ.get(CRASH_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")
    want = os.environ.get(CRASH_ENV)
    if not want:
        return
    target, _, nth = want.partition(":")
    if target != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] >= int(nth or 1):
        os._exit(137)


# ---------------------------------------------------------------- OS errors
_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or choose another place (nothing was replaced)",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another place",
    errno.EROFS: "the file system is read-only: choose a writable place",
    errno.EACCES: "choose a place you may write to, or fix its permissions",
    errno.EPERM: "choose a place you may write to, or fix its permissions",
    errno.EEXIST: "choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "it is a folder: give a file path",
    errno.ENOENT: "the path or its parent folder does not exist or cannot hold new files: check the path or "
                  "choose a writable place",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ELOOP: "fix the symbolic links in the path",
    errno.ENOTEMPTY: "choose another path",
    errno.EXDEV: "choose a place on the same disk",
}


def os_error_message(err: OSError, path=None, doing: str = "write") -> str:
    """One line for an OSError: what could not be done to which path, why, and what to do."""
    where = path if path is not None else (err.filename or "a file")
    reason = err.strerror or type(err).__name__
    advice = _ADVICE.get(err.errno, "check the path and the disk, then run again")
    return " ".join(f"cannot {doing} {where}: {reason} — {advice}".split())


def os_error(err: OSError, path=None, doing: str = "write") -> DataError:
    """The OSError as a one-line :class:`DataError` (raise it ``from None``)."""
    return DataError(os_error_message(err, path, doing))


# ---------------------------------------------------------------- files
def fsync_dir(folder) -> None:
    """Make a rename or creation in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root) -> None:
    """fsync every file and folder under ``root`` (files written by other libraries, before publishing)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


def _temp_name(path: Path, kind: str) -> Path:
    suffix = ".tmp" if kind == "tmp" else ""
    return path.parent / f".{path.name}.causmatch-{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def make_parent(path: Path) -> None:
    """Create the parent folders of ``path``; a file where a folder is needed is ENOTDIR (not EEXIST)."""
    base = path.parent
    while not os.path.lexists(base) and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(base))
    path.parent.mkdir(parents=True, exist_ok=True)


def atomic_write(path, write, *, label: str | None = None) -> Path:
    """Call ``write(binary_file)`` on a temporary sibling of ``path``, fsync it, rename it into place.

    The parent folder is created if missing. An existing *folder* at ``path`` is never replaced.
    ``label`` names the step for :func:`crash_point` (``LABEL.written`` before the rename).
    """
    path = Path(path)
    make_parent(path)
    if path.is_dir() and not path.is_symlink():
        raise DataError(f"cannot write {path}: it is a folder — give a file path")
    tmp = _temp_name(path, "tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if label:
            crash_point(f"{label}.written")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path, text: str, *, label: str | None = None) -> Path:
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), label=label)


def remove_dead_temps(folder, prefix: str = "") -> None:
    """Remove ``.*.causmatch-tmp-PID-*`` files of ``folder`` whose writer process is gone."""
    folder = Path(folder)
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            m = _LEFTOVER_RE.match(entry.name)
            if m and m["kind"] == "tmp" and m["name"].startswith(prefix) and _dead(entry, int(m["pid"])):
                with contextlib.suppress(OSError):
                    entry.unlink()


# ---------------------------------------------------------------- folders
def is_leftover(name: str) -> bool:
    """A temporary or parked name written by :mod:`causmatch.outputs` (never a user's file)."""
    return bool(_LEFTOVER_RE.match(name))


def _alive(pid: int, since: float | None = None) -> bool:
    """Is the process that wrote a leftover (changed at ``since``) still running?

    A process with that id that started after ``since`` is another one (ids are reused).
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    if since is not None:
        started = _start_time(pid)
        if started is not None and started > since + 2.0:
            return False
    return True


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch; Linux /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _dead(entry: Path, pid: int) -> bool:
    try:
        since = entry.lstat().st_ctime
    except OSError:
        return False
    return not _alive(pid, since)


def _leftovers(dest: Path) -> list[tuple[str, int, Path]]:
    found = []
    with contextlib.suppress(OSError):
        for entry in dest.parent.iterdir():
            m = _LEFTOVER_RE.match(entry.name)
            if m and m["name"] == dest.name and m["kind"] in ("stage", "old"):
                found.append((m["kind"], int(m["pid"]), entry))
    return found


def recover_dir(dest) -> bool:
    """After a crash: put a parked version of ``dest`` back if ``dest`` is missing; clear dead leftovers.

    Returns True when a parked version was restored. Only ``.NAME.causmatch-stage/old-PID-*`` folders of
    processes that no longer run are touched.
    """
    dest = Path(os.path.abspath(dest))
    dead = [x for x in _leftovers(dest) if _dead(x[2], x[1])]
    if not dead:
        return False
    restored = False
    if not os.path.lexists(dest):
        parked = sorted((x for x in dead if x[0] == "old"), key=lambda x: x[2].stat().st_mtime_ns)
        if parked:
            try:
                os.replace(parked[-1][2], dest)  # the complete version that was in place before the crash
            except FileNotFoundError:
                pass  # another process restored it first
            else:
                fsync_dir(dest.parent)
                restored = True
            dead.remove(parked[-1])
    if os.path.lexists(dest):
        for _, _, path in dead:
            shutil.rmtree(path, ignore_errors=True)
    return restored


def stage_path(dest) -> Path:
    """A fresh staging name beside ``dest`` (for a folder written elsewhere and moved there to publish)."""
    return _temp_name(Path(dest), "stage")


@contextlib.contextmanager
def stage_dir(dest):
    """A new, empty temporary sibling of ``dest`` to write the next version into.

    Removed again if the block raises (or if it was not published).
    """
    dest = Path(os.path.abspath(dest))
    make_parent(dest)
    stage = _temp_name(dest, "stage")
    stage.mkdir()
    try:
        yield stage
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def publish_dir(stage, dest, *, label: str = "dir") -> None:
    """Make the complete folder ``stage`` the new ``dest``; the old ``dest`` survives until then.

    Steps (each a :func:`crash_point`): ``LABEL.staged`` (stage synced), ``LABEL.parked`` (old version
    moved aside), ``LABEL.published`` (new version in place; the parked one is removed next).
    """
    stage, dest = Path(stage), Path(os.path.abspath(dest))
    fsync_tree(stage)
    crash_point(f"{label}.staged")
    old = None
    if os.path.lexists(dest):
        if not (dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir())):  # an empty folder is
            old = _temp_name(dest, "old")                                                # simply renamed over
            os.replace(dest, old)
            fsync_dir(dest.parent)
            crash_point(f"{label}.parked")
    try:
        os.replace(stage, dest)
    except BaseException:
        if old is not None and not os.path.lexists(dest):
            os.replace(old, dest)  # put the previous version back
        raise
    fsync_dir(dest.parent)
    crash_point(f"{label}.published")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def link_tree(src, dst) -> None:
    """Copy the file or folder ``src`` to ``dst`` by hard links (plain copies where links fail)."""
    src, dst = Path(src), Path(dst)

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
        return b

    if src.is_dir():
        shutil.copytree(src, dst, copy_function=link,
                        ignore=lambda _d, names: [n for n in names if is_leftover(n)])
    else:
        link(src, dst)


# ---------------------------------------------------------------- existing outputs
def _listing(folder: Path, limit: int = 3) -> str:
    names = sorted(n for n in os.listdir(folder) if not is_leftover(n))
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} entr{'y' if len(names) == 1 else 'ies'} ({shown})"


def _probe_writable(out: Path) -> None:
    """OSError now (not after the work) when nothing can be created beside ``out``: read-only, no permission,
    a file where a folder is needed, a pseudo file system such as /proc."""
    base = out.parent
    while not os.path.lexists(base) and base != base.parent:
        base = base.parent
    probe = base / _temp_name(out, "stage").name
    os.mkdir(probe)
    os.rmdir(probe)


def check_output_dir(out, *, command: str, recognise, consent: bool, consent_hint: str = "--overwrite",
                     ignore=()) -> str:
    """Decide whether ``out`` may be written by ``causmatch COMMAND``; returns "new", "empty" or "previous".

    ``recognise(out, names) -> str | None`` returns None when the folder is a previous output of this
    command (only files it writes), else a short description of what is there. ``names`` excludes
    leftovers of our own writes and the names in ``ignore``. A file, a symbolic link, a folder holding
    anything else, or a previous output without ``consent`` is a one-line :class:`DataError`.
    """
    out = Path(os.path.abspath(Path(out).expanduser()))  # "." and ".." resolved: temp siblings need a name
    try:
        recover_dir(out)
        if out.is_symlink():
            raise DataError(f"--out {out} is a symbolic link — give the real folder (or a new path); "
                            "nothing was written")
        if not out.exists():
            _probe_writable(out)
            return "new"
        if not out.is_dir():
            raise DataError(f"--out {out} is an existing file, not a folder — choose a new or empty folder; "
                            "nothing was written")
        names = sorted(n for n in os.listdir(out) if not is_leftover(n) and n not in ignore)
    except OSError as err:
        raise os_error(err, out, "write") from None
    try:
        _probe_writable(out)
    except OSError as err:
        raise os_error(err, out, "write") from None
    if not names:
        return "empty"
    what = recognise(out, names)
    if what is not None:
        raise DataError(f"--out {out} already holds {what} — causmatch {command} writes only into a new or "
                        f"empty folder or over its own previous output; choose another --out (nothing was "
                        "written)")
    if not consent:
        raise DataError(f"--out {out} holds a previous causmatch {command} output — pass {consent_hint} to "
                        "replace it, or choose another --out (nothing was written)")
    return "previous"


def check_output_file(path, *, option: str, recognise, what: str) -> str:
    """Decide, before any work, whether the file ``path`` (given as ``option``) may be written; "new" or "previous".

    ``recognise(path) -> bool`` says whether an existing file is a previous output of this kind (``what``);
    only such a file is replaced (the user named it again). A folder, a symbolic link, any other file or a
    place where nothing can be created is a one-line :class:`DataError` — raised before the work, not after it.
    """
    path = Path(os.path.abspath(Path(path).expanduser()))
    try:
        if path.is_symlink():
            raise DataError(f"{option} {path} is a symbolic link — give a real file path (nothing was written)")
        if path.is_dir():
            raise DataError(f"cannot write {option} {path}: it is a folder — give a file path (nothing was written)")
        _probe_writable(path)
        if not path.exists():
            return "new"
        ours = recognise(path)
    except OSError as err:
        raise os_error(err, path, "write") from None
    if not ours:
        raise DataError(f"{option} {path} exists and is not {what} — choose another path; it was left as it was "
                        "(nothing was written)")
    return "previous"


def describe_folder(out: Path) -> str:
    """``a folder holding N entries (a, b, c)`` for error messages."""
    try:
        return f"a folder holding {_listing(Path(out))}"
    except OSError:
        return "a folder that cannot be listed"
