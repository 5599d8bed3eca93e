"""The watched roots, once: each rule with what every stage needs to know about its files.

Built from the configuration at start and handed to discovery, the hash worker and the
transfer workers, so no stage re-derives a root's settings from the rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.config.models import AgentConfig, Settle, WatchRule
from agent.pipeline.filters import PathFilter


@dataclass(frozen=True)
class Root:
    """One watched root: its rule, its filter and where its datasets go."""

    rule: WatchRule
    destinations: tuple[str, ...]
    filter: PathFilter = field(compare=False)

    @property
    def path(self) -> Path:
        return self.rule.path

    @property
    def key(self) -> str:
        """How the journal names the root (its path as text)."""
        return str(self.rule.path)

    @property
    def name(self) -> str | None:
        """The root's own level in archive paths, when the rule names one."""
        return self.rule.name

    @property
    def follow_symlinks(self) -> bool:
        return self.rule.follow_symlinks

    @property
    def quarantines_malformed(self) -> bool:
        return self.rule.malformed == "quarantine"


class Roots:
    """Every watched root, by the journal's key and by path."""

    def __init__(self, config: AgentConfig) -> None:
        self._by_key = {
            str(rule.path): Root(rule, tuple(config.destinations_for(rule)), PathFilter(rule.include, rule.exclude))
            for rule in config.watch
        }

    def __iter__(self) -> Iterator[Root]:
        return iter(self._by_key.values())

    def get(self, key: str) -> Root | None:
        return self._by_key.get(key)

    def at(self, path: Path) -> Root | None:
        return self._by_key.get(str(path))

    def follow_symlinks(self, key: str) -> bool:
        root = self._by_key.get(key)
        return root is not None and root.follow_symlinks

    def name(self, key: str) -> str | None:
        root = self._by_key.get(key)
        return None if root is None else root.name

    def truncated_grace(self, key: str, settle: Settle) -> float:
        """How long a truncated file of this root waits: its rule's own grace, else the global one."""
        root = self._by_key.get(key)
        own = None if root is None else root.rule.truncated_grace_seconds
        return settle.truncated_grace_seconds if own is None else own

    def destinations_by_key(self) -> dict[str, list[str]]:
        return {key: list(root.destinations) for key, root in self._by_key.items()}
