"""Watch stage: find candidate files under the watched roots.

Two sources feed the settle stage, and neither is trusted alone:

* watchdog events are *hints* (inotify sees nothing on SMB/NFS, Windows drops events
  when its buffer overflows, a polling thread dies when a share drops), so the event
  handler only filters and enqueues paths;
* a reconcile scan (``os.scandir``, streaming, memory flat in the number of files)
  runs at startup and periodically and finds whatever the events missed.

Symbolic links are not followed unless the rule says so, and then only to targets
inside the same watched root: nothing outside a watched root is ever read. A link to a
file is harvested by its target's identity; a link to a folder is never descended into,
since its target, being inside the root, is scanned where it really is: each real folder
is harvested once, as its own dataset, whatever order the scan meets link and folder in.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from agent.pipeline.filters import PathFilter

ErrorCallback = Callable[[str, str], None]
UnreadableCallback = Callable[[str, bool, str], None]  # path, is a folder, reason
SORTED_RUN = 4096  # most files of one folder per run (a run is looked up in the journal at once)
_LIST_BY_DESCRIPTOR = os.scandir in os.supports_fd  # POSIX; Windows lists by path
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


class Found:
    """A regular file found under a root (its ``Path`` is built only when asked for)."""

    __slots__ = ("_folder", "rel_path", "stat")

    def __init__(self, rel_path: str, folder: str, stat: os.stat_result) -> None:
        self.rel_path = rel_path
        self.stat = stat
        self._folder = folder  # the folder it was listed in, as the scan opened it

    @property
    def path(self) -> Path:
        return Path(self._folder, self.rel_path.rpartition("/")[2])


class Run:
    """Files of one folder, sorted by name: (relative path, ``stat``) pairs, and the folder
    they were listed in. (Plain pairs, not a ``Found`` each: a reconcile makes millions.)"""

    __slots__ = ("files", "folder")

    def __init__(self, folder: str, files: list[tuple[str, os.stat_result]]) -> None:
        self.folder = folder
        self.files = files

    def path_of(self, rel_path: str) -> Path:
        return Path(self.folder, rel_path.rpartition("/")[2])

    def found(self) -> Iterator[Found]:
        return (Found(rel_path, self.folder, stat) for rel_path, stat in self.files)


def relative_posix(root: Path, path: Path) -> str | None:
    """*path* relative to *root* with ``/`` separators, or ``None`` if outside it."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return None
    text = relative.as_posix()
    return None if text in ("", ".") or text.startswith("../") else text


def scan_runs(
    root: Path,
    path_filter: PathFilter,
    *,
    follow_symlinks: bool = False,
    start: Path | None = None,
    on_error: ErrorCallback = lambda path, message: None,
    on_listed: Callable[[Path], None] = lambda folder: None,
    on_unreadable: UnreadableCallback = lambda path, folder, reason: None,
) -> Iterator[Run]:
    """Every harvestable regular file under *start* (default: the whole root), a folder's
    files at a time, in name order (the order of the journal's index: a run is then one
    short range of it), at most ``SORTED_RUN`` files per run (a larger folder gives several).

    *on_error* hears every problem; *on_unreadable* also hears each folder that could not
    be listed and each file whose information could not be read (parts of the tree the
    harvest misses); *on_listed* each folder that was listed.

    Depth-first with an explicit stack of folders still to list: memory grows with the
    depth and the width of one folder level, never with the number of files.
    """
    real_root = os.path.realpath(root)
    visited: set[tuple[int, int]] = set()
    first = start or root
    first_rel = relative_posix(root, first) if start is not None else None
    # Each folder with its path relative to the root ("" for the root itself, else "a/b/"):
    # a file's relative path is then one concatenation, not a Path computation.
    pending: list[tuple[Path, str]] = [(first, f"{first_rel}/" if first_rel else "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            folder_stat = folder.stat(follow_symlinks=follow_symlinks)
            key = (folder_stat.st_dev, folder_stat.st_ino)
            if key in visited:
                on_error(str(folder), "symbolic link loop: folder already scanned; skipped")
                continue
            visited.add(key)
            entries, folder_fd = _open_listing(folder)
        except FileNotFoundError:
            continue  # vanished between listing and scanning: nothing to harvest
        except OSError as error:
            on_error(str(folder), f"cannot list folder: {error.strerror or error}")
            on_unreadable(str(folder), True, f"cannot list folder: {error.strerror or error}")
            continue
        on_listed(folder)
        name_allowed, path_allowed = path_filter.name_allowed, path_filter.path_allowed
        folder_text = str(folder)
        run: list[tuple[str, os.stat_result]] = []
        append = run.append
        try:
            for entry in entries:
                name = entry.name
                try:  # the common case inline (a reconcile looks at millions): a plain file
                    if entry.is_file(follow_symlinks=False):  # false for a link, whatever its target
                        if name_allowed(name) and (path_allowed is None or path_allowed(prefix + name)):
                            append((prefix + name, entry.stat(follow_symlinks=False)))
                            if len(run) == SORTED_RUN:  # memory stays flat in a folder of millions
                                run.sort()  # by name: names differ, so the stats are never compared
                                yield Run(folder_text, run)
                                run = []
                                append = run.append
                        continue
                except OSError:
                    pass  # _classify looks again and says what went wrong
                rel_path = prefix + name
                found = _classify(
                    rel_path, folder_text, real_root, entry, path_filter, follow_symlinks, on_error, on_unreadable
                )
                if isinstance(found, Found):
                    append((found.rel_path, found.stat))
                    if len(run) == SORTED_RUN:
                        run.sort()
                        yield Run(folder_text, run)
                        run = []
                        append = run.append
                elif found is not None:
                    pending.append((folder / name, found + "/"))
        finally:
            entries.close()
            if folder_fd is not None:
                os.close(folder_fd)
        if run:
            run.sort()
            yield Run(folder_text, run)


class _Listing(Protocol):
    def __iter__(self) -> Iterator[os.DirEntry[str]]: ...

    def close(self) -> None: ...


def _open_listing(folder: Path) -> tuple[_Listing, int | None]:
    """A folder's entries, and the descriptor they were listed from, for the caller to
    close. Where the platform can, the listing is of an open descriptor: each entry's
    ``stat`` is then one ``fstatat`` of a name, not a walk of the whole path again."""
    if not _LIST_BY_DESCRIPTOR:
        return os.scandir(folder), None
    descriptor = os.open(folder, _FOLDER_FLAGS)
    try:
        return os.scandir(descriptor), descriptor
    except BaseException:
        os.close(descriptor)
        raise


def _classify(
    rel_path: str,
    folder: str,
    real_root: str,
    entry: os.DirEntry[str],
    path_filter: PathFilter,
    follow_symlinks: bool,
    on_error: ErrorCallback,
    on_unreadable: UnreadableCallback,
) -> Found | str | None:
    """A harvestable file, a folder to descend into (its relative path), or nothing."""
    entry_path = str(Path(folder, entry.name))
    try:
        if entry.is_symlink():
            if not follow_symlinks:
                return None
            target = os.path.realpath(entry_path)
            if os.path.commonpath([real_root, target]) != real_root:
                on_error(entry_path, "symbolic link points outside the watched root; not followed")
                return None
            if entry.is_dir(follow_symlinks=True):
                return None  # the real folder is inside the root and is scanned itself
        if entry.is_dir(follow_symlinks=follow_symlinks):
            return rel_path if path_filter.folder_allowed(rel_path) else None
        if not entry.is_file(follow_symlinks=follow_symlinks) or not path_filter.file_allowed(rel_path):
            return None
        return Found(rel_path, folder, entry.stat(follow_symlinks=follow_symlinks))
    except FileNotFoundError:
        return None
    except OSError as error:
        on_error(entry_path, f"cannot read file information: {error.strerror}")
        on_unreadable(entry_path, False, f"cannot read file information: {error.strerror}")
        return None


class Inbox:
    """Paths noticed (by watchers, retries) for the engine thread to look at, and its wake-up.

    Thread-safe. A noticed path is only a prompt to look: the engine decides everything.
    """

    def __init__(self) -> None:
        self._noticed: queue.SimpleQueue[tuple[Path, Path]] = queue.SimpleQueue()
        self._woken = threading.Event()

    def notice(self, root: Path, path: Path) -> None:
        self._noticed.put((root, path))
        self._woken.set()

    def wake(self) -> None:
        """Make the engine's wait end now (an operator command is waiting)."""
        self._woken.set()

    def wait(self, timeout: float) -> None:
        """Until something is noticed, a wake, or *timeout* seconds."""
        self._woken.wait(timeout)
        self._woken.clear()  # anything noticed before this is drained next; anything after sets it again

    def drain(self) -> Iterator[tuple[Path, Path]]:
        while True:
            try:
                yield self._noticed.get_nowait()
            except queue.Empty:
                return


class _NoticeHandler(FileSystemEventHandler):
    """Only passes paths on: all decisions happen in the engine's thread."""

    def __init__(self, root: Path, inbox: Inbox) -> None:
        self._root = root
        self._inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self._inbox.notice(self._root, Path(os.fsdecode(raw)))


class RootWatcher:
    """A watchdog observer for one root that can be checked and restarted."""

    def __init__(self, root: Path, inbox: Inbox, *, polling: bool, polling_interval: float) -> None:
        self.root = root
        self._inbox = inbox
        self._polling = polling
        self._polling_interval = polling_interval
        self._observer: BaseObserver | None = None
        self.restarts = 0

    def start(self) -> None:
        observer: BaseObserver = PollingObserver(timeout=self._polling_interval) if self._polling else Observer()
        observer.schedule(_NoticeHandler(self.root, self._inbox), str(self.root), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def is_alive(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join(timeout=5)
