"""The message tree of one conversation: which branch is shown and where each message
sits among its siblings. Pure logic over ``(id, parent_id)`` links, oldest first.

Edits and regenerations add a sibling under the same parent. The branch shown follows,
from the roots down, the child the user chose under each parent (``branch_choices``) or,
without a choice, the newest child.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ROOT = ""  # the key of the messages without a parent in ``branch_choices``


class MessageTree:
    def __init__(self, links: Iterable[tuple[str, str | None]]) -> None:
        pairs = list(links)
        known = {message_id for message_id, _ in pairs}
        self.parent: dict[str, str] = {}
        self.children: dict[str, list[str]] = {}
        for message_id, parent_id in pairs:
            # A parent that is gone (or never was in this conversation) makes a root.
            key = parent_id if parent_id in known and parent_id != message_id else ROOT
            self.parent[message_id] = key
            self.children.setdefault(key, []).append(message_id)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.parent

    def siblings(self, message_id: str) -> list[str]:
        """The message and its siblings, oldest first."""
        return list(self.children.get(self.parent[message_id], [message_id]))

    def parent_key(self, message_id: str) -> str:
        return self.parent[message_id]

    def active_path(self, choices: Mapping[str, str] | None) -> list[str]:
        """The branch shown, root first."""
        chosen = choices or {}
        path: list[str] = []
        seen: set[str] = set()
        key = ROOT
        while kids := self.children.get(key):
            pick = chosen.get(key)
            node = pick if pick in kids else kids[-1]
            if node in seen:  # a cycle can only come from damaged data: stop there
                break
            seen.add(node)
            path.append(node)
            key = node
        return path


def page_before(path: list[str], before: str | None, limit: int) -> tuple[list[str], bool]:
    """Up to ``limit`` ids of ``path`` just before ``before`` (the newest when ``None``),
    oldest first, and whether older ones remain. ``before`` must be on the path."""
    end = path.index(before) if before is not None else len(path)
    start = max(0, end - limit)
    return path[start:end], start > 0
