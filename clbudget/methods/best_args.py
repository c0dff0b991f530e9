"""Mammoth's per-data-set best arguments (DER++, online EWC) and the listed buffer size a run
of another size uses.

Mammoth (aimagelab/mammoth) publishes tuned hyper-parameters per (model, data set, buffer
size) in two files, both read at commit e75a491c69fd729edeb01431afb753d9157d9a81
(`MAMMOTH_COMMIT`):
- models/config/<model>.yaml: what `--model_config best` loads (models/utils/__init__.py
  `load_model_config`) and what scripts/reproduce.json runs;
- utils/best_args.py: the older table of `--load_best_args` (utils/args.py calls it
  deprecated; unchanged since d75fe5fe, 2023-12-26), the values of the DER paper's appendix.
Rule: one file per (model, data set): the yaml where it lists the data set, else
best_args.py.  Mammoth's data sets as clbudget's catalogue names them (`MAMMOTH_DATASETS`):
cifar10 = seq-cifar10, cifar100 = seq-cifar100, tinyimagenet = seq-tinyimg, mnist =
seq-mnist.  perm-mnist, rot-mnist (a random rotation per task, not clbudget's fixed rot90
domains) and mnist-360 have no counterpart here and are not used.  A run's data set is its
declared one (`--normalization SOURCE:DATASET` declares an ImageFolder tree, train/recipes.py
`declared_dataset`), whatever its class subset or split.

A table lists entries by buffer size (a method without a buffer: one entry, Mammoth's -1).
Mammoth itself refuses an unlisted size (load_model_config asserts it); here a run whose
buffer (the allocation's `n_exemplars`) is not listed uses the listed size NEAREST IN LOG
SCALE (smallest |ln(n / size)|; a tie goes to the smaller size), and says which
(`Choice.text`, the row's `recipe_source`).  On seq-cifar10's 200, 500, 5120 the boundaries
are sqrt(200 * 500) = 316.2 and sqrt(500 * 5120) = 1600: up to 316 -> 200, 317 to 1600 ->
500 (1600 is the tie), from 1601 -> 5120.  Log scale because the listed sizes are spaced by
ratios (x2.5, x10.24); "the largest not above" would give 5,119 exemplars the arguments of 500.
Before an allocation exists (run keys, sweep plans) the entry of `PLANNING_BUFFER` (500, the
size the methods' Config defaults come from) stands in.  Guarded by tests/test_best_args.py
and the mutants derpp.best_args_*, ewc.best_args_* (bench/mutant_catalog/derpp.py, ewc.py).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

MAMMOTH_COMMIT = "e75a491c69fd729edeb01431afb753d9157d9a81"
MAMMOTH_DATASETS = {"cifar10": "seq-cifar10", "cifar100": "seq-cifar100",
                    "tinyimagenet": "seq-tinyimg", "mnist": "seq-mnist"}
PLANNING_BUFFER = 500
RULE = "nearest in log scale"


@dataclass(frozen=True)
class Entry:
    """One listed configuration: the method Config's fields and the recipe of its training."""
    buffer_size: int | None              # None: no buffer (Mammoth's -1)
    config: tuple[tuple[str, object], ...]
    recipe: str                          # train/recipe_book.py


@dataclass(frozen=True)
class Table:
    """Mammoth's best arguments of one model on one data set."""
    model: str                           # Mammoth's model name: derpp, ewc_on
    dataset: str                         # Mammoth's data set name: seq-cifar10, ...
    source: str                          # the file(s) read, at MAMMOTH_COMMIT
    entries: tuple[Entry, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(e.buffer_size for e in self.entries if e.buffer_size is not None)

    def entry(self, n_exemplars: int | None) -> Entry:
        """The entry of `n_exemplars` (listed, else the listed size nearest in log scale;
        None: PLANNING_BUFFER's)."""
        if not self.sizes:
            return self.entries[0]
        size = nearest_listed(self.sizes, PLANNING_BUFFER if n_exemplars is None
                              else n_exemplars)
        return next(e for e in self.entries if e.buffer_size == size)

    @property
    def fingerprint(self) -> str:
        """Every listed value and the training of every listed recipe (a run key part)."""
        from clbudget.train.recipes import get_recipe
        blob = json.dumps({"source": self.source, "entries": [
            [e.buffer_size, sorted(e.config), get_recipe(e.recipe).fingerprint]
            for e in self.entries]}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def nearest_listed(sizes, n: int) -> int:
    """The listed size nearest to `n` in log scale; a tie goes to the smaller size."""
    n = max(int(n), 1)
    return min(sorted(sizes), key=lambda s: abs(math.log(n / s)))


def table_for(cls, dataset: str | None) -> Table | None:
    """The best-arguments table of method class `cls` for `dataset` (a catalogue name), or
    None (a method without tables, or a data set Mammoth does not list for it)."""
    tables = getattr(cls, "best_args", None) or {}
    if not tables or not dataset:
        return None
    from clbudget.streams.catalog import dataset_info
    try:
        key = dataset_info(dataset).name
    except ValueError:
        return None
    return tables.get(key)


def _fmt(config, options: dict) -> str:
    """"alpha 0.3, beta 0.5", an --option value marked with the table's beside it."""
    return ", ".join(f"{k} {options[k]} (--option; Mammoth's {v})" if k in options
                     else f"{k} {v}" for k, v in config)


@dataclass(frozen=True)
class Choice:
    """What a run of a method with best-argument tables took from them."""
    method: str
    dataset: str                         # the run's declared data set
    n_exemplars: int
    table: Table | None                  # None: Mammoth lists nothing for this data set
    entry: Entry | None
    defaults: str                        # where the method's Config defaults come from
    config: tuple[tuple[str, object], ...]   # the table's values (or the Config defaults)
    overridden: tuple[tuple[str, object], ...]   # (field, value) the run's --option set
    recipe: str                          # the recipe the run trains with
    imposed: bool                        # that recipe is not the table's (--recipe)

    def text(self) -> str:
        """One line for the row and the run summary: which listed size, from which file."""
        values = _fmt(self.config, dict(self.overridden))
        if self.table is None:
            head = (f"Mammoth lists no best args of {self.method} for {self.dataset}: "
                    f"its defaults, {self.defaults}: {values}")
        else:
            t, size = self.table, self.entry.buffer_size
            where = f"{t.source} @ {MAMMOTH_COMMIT[:8]}"
            if size is None:
                head = f"Mammoth best args for {t.dataset} ({where}): {values}"
            elif size == self.n_exemplars:
                head = (f"Mammoth best args for {t.dataset} buffer {size} ({where}), this "
                        f"run's buffer: {values}")
            else:
                head = (f"Mammoth best args for {t.dataset} buffer {size}, the nearest listed "
                        f"({', '.join(map(str, t.sizes))}; {RULE}) to this run's "
                        f"{self.n_exemplars} ({where}): {values}")
        return head + f"; recipe {self.recipe}" + (" (imposed by --recipe)" if self.imposed
                                                   else "")

    def to_dict(self) -> dict:
        t = self.table
        return {"source": None if t is None else f"{t.source} @ {MAMMOTH_COMMIT}",
                "mammoth_dataset": None if t is None else t.dataset,
                "listed_buffer_sizes": [] if t is None else list(t.sizes),
                "buffer_size": None if self.entry is None else self.entry.buffer_size,
                "n_exemplars": self.n_exemplars, "rule": RULE,
                "values": dict(self.config), "overridden": dict(self.overridden),
                "recipe": self.recipe, "defaults": None if t is not None else self.defaults}


def choose(cls, dataset: str, n_exemplars: int, options: dict, recipe: str,
           imposed: bool) -> Choice | None:
    """The best arguments a run of `cls` on `dataset` with a buffer of `n_exemplars` takes
    (None for a method without tables).  `options`: the run's --option fields (they win)."""
    tables = getattr(cls, "best_args", None)
    if not tables:
        return None
    table = table_for(cls, dataset)
    entry = None if table is None else table.entry(n_exemplars)
    if entry is None:
        default = cls.Config()
        fields = sorted({k for t in tables.values() for e in t.entries for k, _ in e.config})
        config = tuple((k, getattr(default, k)) for k in fields)
    else:
        config = entry.config
    return Choice(cls.name, dataset, int(n_exemplars), table, entry,
                  getattr(cls, "best_args_defaults", "the Config's"),
                  config, tuple((k, options[k]) for k, _ in config if k in options), recipe,
                  imposed)


def configure(config, choice: Choice | None, options: dict):
    """`config` with the chosen entry's values for every field the run's options leave."""
    import dataclasses
    if choice is None or choice.entry is None:
        return config
    return dataclasses.replace(config, **{k: v for k, v in choice.entry.config
                                          if k not in options})
