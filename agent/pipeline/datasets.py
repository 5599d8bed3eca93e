"""Dataset stage: which dataset a file belongs to, and when a dataset is complete.

Placement comes from the watch rule's template (see ``agent.rules.templates``). Closing is
decided on the LOCAL MONOTONIC clock, by three rules:

* idle: no member appeared or changed for ``dataset_idle_seconds``;
* marker: the configured marker file (e.g. ``acquisition.done``) has settled;
* cap: the dataset has been open for ``dataset_max_open_seconds`` (forced close, with a
  warning), so a forgotten acquisition still reaches the archive.

A dataset never closes while one of its files is still settling. Timers live in memory:
after a restart every open dataset starts a fresh idle period, which can only delay a
close, never make one early.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config.models import Settle, WatchRule
from agent.extract.bundles import unit_folder_index
from agent.extract.dicom import grouping_attributes
from agent.pipeline.declared import fileset_wanted
from agent.rules.templates import TemplateMatch


@dataclass
class _Timer:
    opened: float
    last_activity: float
    marker_seen: bool = False


@dataclass(frozen=True)
class CloseDecision:
    dataset_id: int
    reason: str
    forced: bool = False  # closed at the cap, possibly while files were still being written
    decided_by: str = "idle"  # idle, marker, forced (harvest.json's completeness block)


@dataclass
class DatasetTimers:
    settle: Settle
    clock: Callable[[], float] = time.monotonic
    _timers: dict[int, _Timer] = field(default_factory=dict)

    def track(self, dataset_id: int) -> None:
        """Start timing an open dataset found in the journal (e.g. after a restart)."""
        if dataset_id not in self._timers:
            now = self.clock()
            self._timers[dataset_id] = _Timer(now, now)

    def touch(self, dataset_id: int, *, marker: bool = False) -> None:
        """A member of the dataset appeared or changed."""
        now = self.clock()
        timer = self._timers.setdefault(dataset_id, _Timer(now, now))
        timer.last_activity = now
        timer.marker_seen = timer.marker_seen or marker

    def forget(self, dataset_id: int) -> None:
        self._timers.pop(dataset_id, None)

    def __contains__(self, dataset_id: int) -> bool:
        return dataset_id in self._timers

    def due(self, busy: Iterable[int] | Callable[[int], bool]) -> list[CloseDecision]:
        """Datasets that should close now; busy ones (files settling, fileset incomplete) stay open.

        *busy* is a set of ids or a predicate, asked only about datasets otherwise due.
        """
        now = self.clock()
        is_busy = busy if callable(busy) else set(busy).__contains__
        decisions = []
        for dataset_id, timer in self._timers.items():
            if now - timer.opened >= self.settle.dataset_max_open_seconds:
                decisions.append(
                    CloseDecision(
                        dataset_id,
                        "forced: open longer than dataset_max_open_seconds",
                        forced=True,
                        decided_by="forced",
                    )
                )
                continue
            idle = now - timer.last_activity >= self.settle.dataset_idle_seconds
            if not (timer.marker_seen or (self.settle.marker is None and idle)):
                continue
            if is_busy(dataset_id):
                continue
            reason = f"marker file {self.settle.marker} arrived" if timer.marker_seen else "idle"
            decisions.append(CloseDecision(dataset_id, reason, decided_by="marker" if timer.marker_seen else "idle"))
        for decision in decisions:
            del self._timers[decision.dataset_id]
        return decisions

    def open_reason(self, dataset_id: int) -> str | None:
        """What the timers wait for ("waiting 4 min of idle time", "waiting for marker ...")."""
        timer = self._timers.get(dataset_id)
        if timer is None:
            return None
        if self.settle.marker is not None:
            return f"waiting for marker file {self.settle.marker}"
        left = timer.last_activity + self.settle.dataset_idle_seconds - self.clock()
        return (
            f"waiting {_duration(max(left, 0.0))} of idle time"
            if left > 0
            else "idle time over; members missing or still busy"
        )

    def next_deadline(self) -> float | None:
        deadlines = [timer.opened + self.settle.dataset_max_open_seconds for timer in self._timers.values()]
        if self.settle.marker is None:
            deadlines += [timer.last_activity + self.settle.dataset_idle_seconds for timer in self._timers.values()]
        return min(deadlines, default=None)


def _duration(seconds: float) -> str:
    if seconds >= 90:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds)} s"


def place(rule: WatchRule, rel_path: str, path: Path) -> TemplateMatch | None:
    """The dataset a file belongs to: by DICOM study/series if the rule says so, else by folder."""
    if rule.group_by != "folder":
        attributes = grouping_attributes(path)
        if attributes is not None:
            study = attributes["study_instance_uid"]
            key = study if rule.group_by == "dicom-study" else f"{study}/{attributes['series_instance_uid']}"
            return TemplateMatch(dataset_key=key, fields=attributes, path_in_dataset=rel_path)
    levels = rel_path.count("/") + 1
    unit = unit_folder_index(path.parents[levels - 1], rel_path) if rule.template.depth > 1 else None
    if unit is not None and unit + 1 < rule.template.depth:
        return rule.template.match(rel_path, stop_at=unit + 1)  # the template reaches inside the unit
    return rule.template.match(rel_path)


def missing_fileset_members(files: Iterable[tuple[str, dict[str, Any] | None]]) -> list[str]:
    """Files that OME metadata in the dataset names (TiffData FileName, BinaryOnly companion)
    but that are not (yet) in the dataset. *files*: (path in dataset, metadata) pairs."""
    present: set[str] = set()
    wanted: set[str] = set()
    for path_in_dataset, metadata in files:
        present.add(path_in_dataset)
        wanted |= fileset_wanted(path_in_dataset, metadata)
    return sorted(wanted - present)
