"""The Ledger: what a method keeps across a task boundary, item by item, in bytes."""
from __future__ import annotations

from dataclasses import dataclass, field

# Kinds of retained state (DESIGN.md section 2).  A kind outside this set is a
# typo, not a new category: it is refused.
KINDS = ("params", "buffers", "exemplars", "exemplar_aux", "class_stats", "importance",
         "masks", "old_model", "per_task")


@dataclass(frozen=True)
class LedgerItem:
    name: str
    kind: str
    n_bytes: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"ledger kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if int(self.n_bytes) != self.n_bytes or self.n_bytes < 0:
            raise ValueError(f"ledger item {self.name!r}: n_bytes must be a non-negative "
                             f"integer, got {self.n_bytes!r}")


@dataclass(frozen=True)
class Ledger:
    items: tuple[LedgerItem, ...] = field(default_factory=tuple)
    convention: str = "strict"

    @classmethod
    def of(cls, items, convention: str = "strict") -> "Ledger":
        """Build from (name, kind, n_bytes) triples or LedgerItems; zero-byte items dropped."""
        built = tuple(i if isinstance(i, LedgerItem) else LedgerItem(i[0], i[1], int(i[2]))
                      for i in items)
        return cls(tuple(i for i in built if i.n_bytes), convention)

    @property
    def total_bytes(self) -> int:
        return sum(i.n_bytes for i in self.items)

    def by_kind(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for item in self.items:
            totals[item.kind] = totals.get(item.kind, 0) + item.n_bytes
        return totals

    def bytes_of(self, *kinds: str) -> int:
        return sum(i.n_bytes for i in self.items if i.kind in kinds)

    def __add__(self, other: "Ledger") -> "Ledger":
        if other.convention != self.convention:
            raise ValueError(f"cannot add a {other.convention} ledger to a {self.convention} one")
        return Ledger(self.items + other.items, self.convention)

    def to_dict(self) -> dict:
        return {"convention": self.convention, "total_bytes": self.total_bytes,
                "by_kind": self.by_kind(),
                "items": [{"name": i.name, "kind": i.kind, "n_bytes": i.n_bytes}
                          for i in self.items]}
