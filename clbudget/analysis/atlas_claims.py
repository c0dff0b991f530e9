"""The claims atlas, part 1 of 5: one claim file, read and validated into an `AtlasClaim`.

The contract (docs/atlas.md; one YAML file per claim, file stem == id, loaded with
yaml.safe_load; every key below is known, any other is refused naming the nearest)::

    id: der-vs-icarl-cifar100-b0inc10
    claim: DER's average incremental accuracy beats iCaRL's by 11.0 pp on CIFAR-100 B0, 10 tasks
    source:                        # where the NUMBERS were read
      authors: Shipeng Yan, Jiangwei Xie, Xuming He
      title: "DER: Dynamically Expandable Representation for Class Incremental Learning"
      venue: CVPR
      year: 2021
      arxiv: "2103.16788"          # the arXiv id of the paper making the comparison (string);
                                   # null only when url is a repository file pinned to its
                                   # commit (a README figure, a project page, not a paper)
      url: https://github.com/OWNER/REPO/blob/COMMIT/README.md   # public address of the numbers
      commit: 0123...              # 40-hex commit when url is a repository file, else omit
      table: Table 1               # table or figure (as named in the source)
      row: iCaRL; DER (w/o P)      # the rows
      column: CIFAR100-B0 10 steps, Avg   # the column
      credited_to: null            # a number the source credits to another paper, said here
      erratum: null                # a published correction bearing on this claim: text + url
    stream:
      dataset: cifar100            # cifar10 | cifar100 | imagenet100 | imagenet1k | tinyimagenet |
                                   # core50 | 5datasets | stream71 | ... (atlas_shapes.py)
      init: 0                      # classes of the first task (B); 0 when all tasks are equal;
                                   # null (with inc) exactly for a task stream (stream71)
      inc: 10                      # classes per later task (Inc)
      tasks: 10                    # number of tasks as the source states it (with or without
                                   # the base task when init > 0)
    metric: average_incremental    # average_incremental | last
    methods:                       # two or more; the first one is the claimed winner
      - name: der                  # a clbudget method or a priced-only one (atlas_prices.py)
        label: DER (w/o P)         # as the source names it
        paper_arxiv: "2103.16788"  # arXiv id of THIS METHOD's own paper (string), or null and:
        paper_url: null            # its paper's page, given exactly when paper_arxiv is null
        accuracy: 75.36            # the reported number, in %
        backbone: resnet32         # atlas_shapes.BACKBONES, or `unstated` (the source names
                                   # none: priced as the claim's other methods' backbone, or
                                   # the dataset's convention, and flagged)
        keeps:                     # kept across task boundaries, as the source says
          exemplars: 2000          # stored images at the end (fixed total), or:
          exemplars_per_class: null  # e.g. 20; give one of the two (the other null), or 0
          backbones: 10            # backbones / expert blocks kept at the end; 1 for most
          teacher: true            # an old model kept for distillation into the next task
          prompts: null            # prompt methods: {pool, length, dim[, layers, g_length,
                                   # g_layers]}; DyTox: its task tokens {pool, length, dim}
          masks: false             # per-task masks (e.g. MIND, PackNet)
          extra_params: 51200      # optional: parameters kept beyond backbones, head, prompts
                                   # and masks (prototypes, bias layers, adapters), or
                                   # {count, dtype (float32), in_features (false)}; see
                                   # atlas_prices.extra_items for how they are priced
          note: "one ResNet32 per task; 2,000 exemplars (Sec. 4.1)"

Every fault raises `AtlasError` with one line: "FILE: FIELD: what was wrong (nearest ...)".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from clbudget.streams.catalog import nearest

CLAIM_KEYS = ("id", "claim", "source", "stream", "metric", "methods")
SOURCE_KEYS = ("authors", "title", "venue", "year", "arxiv", "url", "commit", "table", "row",
               "column", "credited_to", "erratum")
SOURCE_OPTIONAL = ("commit", "credited_to", "erratum")
STREAM_KEYS = ("dataset", "init", "inc", "tasks")
METHOD_KEYS = ("name", "label", "paper_arxiv", "paper_url", "accuracy", "backbone", "keeps")
METHOD_OPTIONAL = ("paper_url",)
KEEPS_KEYS = ("exemplars", "exemplars_per_class", "backbones", "teacher", "prompts", "masks",
              "extra_params", "note")
KEEPS_OPTIONAL = ("exemplars", "exemplars_per_class", "prompts", "masks",  # one of the first two
                  "extra_params")
EXTRA_KEYS = ("count", "dtype", "in_features")
# dtypes a source may state for its extra parameters, and their bytes
EXTRA_DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int64": 8,
                "int32": 4, "int16": 2, "int8": 1, "uint8": 1}
PROMPT_KEYS = ("pool", "length", "dim", "layers", "g_length", "g_layers")
METRICS = ("average_incremental", "last")

ARXIV = re.compile(r"(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})(v\d+)?")
SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
HEX40 = re.compile(r"[0-9a-f]{40}")


class AtlasError(ValueError):
    """A claim file that does not follow the atlas schema (one line: file, field, why)."""


@dataclass(frozen=True)
class Extra:
    """Parameters a method keeps beyond backbones, head, prompts and masks, as the source
    states them: how many, at which dtype, and whether the features pass through them."""
    count: int
    dtype: str = "float32"
    in_features: bool = False

    @property
    def n_bytes(self) -> int:
        return self.count * EXTRA_DTYPES[self.dtype]


@dataclass(frozen=True)
class Keeps:
    exemplars: int | None
    exemplars_per_class: int | None
    backbones: int
    teacher: bool
    prompts: dict | None
    masks: bool
    note: str
    extra: Extra | None = None

    def n_exemplars(self, num_classes: int) -> int:
        """Exemplars held at the end of the stream (a per-class quota times the classes)."""
        if self.exemplars_per_class:
            return self.exemplars_per_class * num_classes
        return self.exemplars or 0


@dataclass(frozen=True)
class AtlasMethod:
    index: int
    name: str
    label: str
    paper_arxiv: str | None
    accuracy: float
    backbone: str            # the backbone priced (the resolved one when unstated)
    keeps: Keeps
    paper_url: str | None = None
    backbone_stated: bool = True   # False: `backbone: unstated` in the file

    @property
    def backbone_flag(self) -> str:
        """The flag an unstated backbone carries in every report ("" when stated)."""
        return ("" if self.backbone_stated else
                f"backbone not stated by the source; priced as {self.backbone}")


@dataclass(frozen=True)
class AtlasClaim:
    id: str
    claim: str
    source: dict
    dataset: str
    init: int | None         # None (with inc): a task stream (atlas_shapes.TASK_STREAMS)
    inc: int | None
    tasks: int               # as the source states it
    num_tasks: int           # tasks of the stream, the base task included
    num_classes: int
    image_shape: tuple[int, int, int]
    metric: str
    methods: tuple[AtlasMethod, ...]
    file: str = ""
    loadable: bool = False   # clbudget reads the dataset
    input_dtype: str = "uint8"   # a stored exemplar's dtype (a feature stream's float32)

    @property
    def winner(self) -> AtlasMethod:
        return self.methods[0]


def runner_up(claim: AtlasClaim) -> AtlasMethod:
    """The loser the headline compares the winner with: the highest reported accuracy among
    the others, the first listed on a tie."""
    return max(claim.methods[1:], key=lambda m: (m.accuracy, -m.index))


def citation(claim: AtlasClaim) -> str:
    s = claim.source
    where = f"arXiv {s['arxiv']}" if s["arxiv"] else f"no arXiv id: {s['url']}"
    return f"{s['authors']}, \"{s['title']}\", {s['venue']} {s['year']} ({where})"


# ---------------------------------------------------------------- checks

class _Where:
    """The file and field an error names."""

    def __init__(self, file: str, path: str = ""):
        self.file, self.path = file, path

    def __truediv__(self, key) -> "_Where":
        sep = "" if isinstance(key, int) or not self.path else "."
        part = f"[{key}]" if isinstance(key, int) else str(key)
        return _Where(self.file, f"{self.path}{sep}{part}")

    def fail(self, message: str):
        field_ = f" {self.path}:" if self.path else ""
        raise AtlasError(f"{self.file}:{field_} {message}")


def _mapping(obj, keys, required, w: _Where) -> dict:
    if not isinstance(obj, dict):
        w.fail(f"expected a mapping with keys {', '.join(keys)}, got {type(obj).__name__}")
    for key in obj:
        if key not in keys:
            (w / str(key)).fail(f"unknown key {str(key)!r}; nearest valid key: "
                                f"{nearest(str(key), keys)!r}")
    for key in required:
        if key not in obj:
            (w / key).fail("missing required key")
    return obj


def _text(value, w: _Where, *, one_line: bool = True) -> str:
    if not isinstance(value, str) or not value.strip():
        w.fail(f"expected non-empty text, got {value!r}")
    if one_line and "\n" in value.strip():
        w.fail("expected one line of text")
    return value.strip()


def _int(value, w: _Where, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        w.fail(f"expected an integer, got {value!r}")
    if value < minimum:
        w.fail(f"expected an integer >= {minimum}, got {value}")
    return value


def _bool(value, w: _Where) -> bool:
    if not isinstance(value, bool):
        w.fail(f"expected true or false, got {value!r}")
    return value


def _arxiv(value, w: _Where) -> str:
    if not isinstance(value, str):
        w.fail(f"expected an arXiv id as a quoted string (e.g. \"2103.16788\"), got {value!r}")
    if not ARXIV.fullmatch(value.strip()):
        w.fail(f"expected an arXiv id such as \"2103.16788\", got {value!r}")
    return value.strip()


def _url(value, w: _Where) -> str:
    url = _text(value, w)
    if not re.match(r"https?://\S+$", url):
        w.fail(f"expected a public http(s) address, got {url!r}")
    return url


# ---------------------------------------------------------------- parts

def _source(obj, w: _Where) -> dict:
    _mapping(obj, SOURCE_KEYS, [k for k in SOURCE_KEYS if k not in SOURCE_OPTIONAL], w)
    out = {k: _text(obj[k], w / k) for k in ("authors", "title", "venue", "table", "row",
                                             "column")}
    out["year"] = _int(obj["year"], w / "year", 1900)
    url = out["url"] = _url(obj["url"], w / "url")
    commit = obj.get("commit")
    repo_file = "github.com" in url and "/blob/" in url
    if commit is not None:
        if not isinstance(commit, str) or not HEX40.fullmatch(commit):
            (w / "commit").fail(f"expected a 40-hex commit, got {commit!r}")
        if repo_file and commit not in url:
            (w / "commit").fail("the url names another commit; pin the url to this commit")
    elif repo_file:
        (w / "commit").fail("missing: the url is a repository file; give its 40-hex commit")
    out["commit"] = commit
    if obj["arxiv"] is None:   # a repository's README figure or project page, not a paper
        if not (repo_file and commit):
            (w / "arxiv").fail("null: allowed only for a source that is a repository file "
                               "pinned to its commit (url .../blob/COMMIT/PATH and commit); "
                               "give the arXiv id of the paper the numbers are read from")
        out["arxiv"] = None
    else:
        out["arxiv"] = _arxiv(obj["arxiv"], w / "arxiv")
    for key in ("credited_to", "erratum"):
        value = obj.get(key)
        if isinstance(value, dict) and key == "erratum":
            _mapping(value, ("text", "url"), ("text", "url"), w / key)
            text, url = _text(value["text"], w / key / "text"), _text(value["url"], w / key / "url")
            value = f"{text} ({url})"
        elif value is not None:
            value = _text(value, w / key, one_line=False)
        out[key] = value
    return out


def _stream(obj, w: _Where):
    from clbudget.analysis.atlas_shapes import dataset_names, dataset_shape
    _mapping(obj, STREAM_KEYS, STREAM_KEYS, w)
    name = obj["dataset"]
    if not isinstance(name, str) or name not in dataset_names():
        (w / "dataset").fail(f"unknown dataset {name!r}; nearest: "
                             f"{nearest(str(name), dataset_names())!r}")
    ds = dataset_shape(name)
    if ds.tasks:   # a task stream: its own tasks, no class split
        for key in ("init", "inc"):
            if obj[key] is not None:
                (w / key).fail(f"{name} is a stream of {ds.tasks} tasks of unequal class "
                               f"counts, not a B/Inc split: set init and inc to null")
        tasks = _int(obj["tasks"], w / "tasks", 1)
        if tasks != ds.tasks:
            (w / "tasks").fail(f"{name} has {ds.tasks} tasks, got {tasks}")
        return ds, None, None, tasks, tasks
    init = _int(obj["init"], w / "init")
    inc = _int(obj["inc"], w / "inc", 1)
    tasks = _int(obj["tasks"], w / "tasks", 1)
    if init > ds.num_classes:
        (w / "init").fail(f"{init} classes in the first task; {name} has {ds.num_classes}")
    first = init or inc
    total = first + (tasks - 1) * inc
    if total == ds.num_classes:
        num_tasks = tasks
    elif init and init + tasks * inc == ds.num_classes:   # "B50, 5 steps": the base not counted
        num_tasks = tasks + 1
    else:
        valid = [t for t in range(1, ds.num_classes + 1)
                 if first + (t - 1) * inc == ds.num_classes
                 or (init and init + t * inc == ds.num_classes)]
        (w / "tasks").fail(f"B{init}Inc{inc} with {tasks} tasks covers {total} classes, {name} "
                           f"has {ds.num_classes}; valid: "
                           f"{', '.join(map(str, valid)) or 'none (check init and inc)'}")
    return ds, init, inc, tasks, num_tasks


def _keeps(obj, method: str, w: _Where) -> Keeps:
    from clbudget.analysis.atlas_prices import PROMPT_METHODS, TOKEN_METHODS
    _mapping(obj, KEEPS_KEYS, [k for k in KEEPS_KEYS if k not in KEEPS_OPTIONAL], w)
    if "exemplars" not in obj and "exemplars_per_class" not in obj:
        (w / "exemplars").fail("missing: give exemplars or exemplars_per_class (0 for none)")
    ex = obj.get("exemplars")
    per = obj.get("exemplars_per_class")
    ex = None if ex is None else _int(ex, w / "exemplars")
    per = None if per is None else _int(per, w / "exemplars_per_class")
    if ex and per:
        (w / "exemplars_per_class").fail(f"both exemplars ({ex}) and exemplars_per_class ({per}) "
                                         f"are set; give one, the other null")
    prompts = obj.get("prompts")
    if prompts is not None:
        _mapping(prompts, PROMPT_KEYS, ("pool", "length", "dim"), w / "prompts")
        prompts = {k: _int(v, w / "prompts" / k, 1) for k, v in prompts.items()}
    if method in PROMPT_METHODS and prompts is None:
        (w / "prompts").fail(f"{method} keeps a prompt pool: give {{pool, length, dim}}")
    if method not in PROMPT_METHODS + TOKEN_METHODS and prompts is not None:
        (w / "prompts").fail(f"{method} keeps no prompts (prompt methods: "
                             f"{', '.join(PROMPT_METHODS)}; task tokens: "
                             f"{', '.join(TOKEN_METHODS)}); set null")
    if method == "dualprompt" and prompts and "g_length" not in prompts:
        (w / "prompts" / "g_length").fail("missing: DualPrompt's G-prompt length")
    extra = obj.get("extra_params")
    extra = None if extra is None else _extra(extra, w / "extra_params")
    return Keeps(ex, per, _int(obj["backbones"], w / "backbones", 1),
                 _bool(obj["teacher"], w / "teacher"), prompts,
                 _bool(obj.get("masks", False), w / "masks"),
                 _text(obj["note"], w / "note", one_line=False), extra)


def _extra(obj, w: _Where) -> Extra:
    """`extra_params: N` (float32, outside the feature extractor) or {count, dtype,
    in_features}."""
    if not isinstance(obj, dict):
        return Extra(_int(obj, w, 1))
    _mapping(obj, EXTRA_KEYS, ("count",), w)
    dtype = obj.get("dtype", "float32")
    if dtype not in EXTRA_DTYPES:
        (w / "dtype").fail(f"unknown dtype {dtype!r}; nearest: "
                           f"{nearest(str(dtype), EXTRA_DTYPES)!r}")
    return Extra(_int(obj["count"], w / "count", 1), dtype,
                 _bool(obj.get("in_features", False), w / "in_features"))


def _method(obj, i: int, w: _Where) -> AtlasMethod:
    from clbudget.analysis.atlas_prices import method_names
    from clbudget.analysis.atlas_shapes import UNSTATED, backbone_names
    _mapping(obj, METHOD_KEYS, [k for k in METHOD_KEYS if k not in METHOD_OPTIONAL], w)
    name = obj["name"]
    if not isinstance(name, str) or name not in method_names():
        (w / "name").fail(f"unknown method {name!r}; nearest: "
                          f"{nearest(str(name).lower(), method_names())!r}")
    acc = obj["accuracy"]
    if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 100:
        (w / "accuracy").fail(f"expected a percentage in [0, 100], got {acc!r}")
    backbone = obj["backbone"]
    if not isinstance(backbone, str) or backbone not in backbone_names():
        (w / "backbone").fail(f"unknown backbone {backbone!r}; nearest: "
                              f"{nearest(str(backbone).lower(), backbone_names())!r}")
    # paper_url exactly when paper_arxiv is null: every method's paper has one address
    arxiv, url = obj["paper_arxiv"], obj.get("paper_url")
    if arxiv is None:
        if url is None:
            (w / "paper_url").fail("missing: paper_arxiv is null, give the address of the "
                                   "method's paper (e.g. its CVF open-access page)")
        url = _url(url, w / "paper_url")
    else:
        arxiv = _arxiv(arxiv, w / "paper_arxiv")
        if url is not None:
            (w / "paper_url").fail(f"given beside paper_arxiv {arxiv!r}: give paper_url only "
                                   f"when the paper has no arXiv id (paper_arxiv: null)")
    return AtlasMethod(i, name, _text(obj["label"], w / "label"), arxiv, float(acc), backbone,
                       _keeps(obj["keeps"], name, w / "keeps"), url,
                       backbone_stated=backbone != UNSTATED)


def _resolve_unstated(methods: tuple, dataset: str, w: _Where) -> tuple:
    """An unstated backbone is priced as the one the claim's other methods share, else as the
    dataset's convention (atlas_shapes.CONVENTION_BACKBONE); refused where neither exists."""
    from dataclasses import replace

    from clbudget.analysis.atlas_shapes import CONVENTION_BACKBONE
    stated = {m.backbone for m in methods if m.backbone_stated}
    out = []
    for m in methods:
        if not m.backbone_stated:
            if len(stated) == 1:
                m = replace(m, backbone=next(iter(stated)))
            elif dataset in CONVENTION_BACKBONE:
                m = replace(m, backbone=CONVENTION_BACKBONE[dataset])
            else:
                (w / m.index / "backbone").fail(
                    f"unstated, and the claim's other methods share no backbone "
                    f"({', '.join(sorted(stated)) or 'none stated'}) nor has {dataset} a "
                    f"convention ({', '.join(CONVENTION_BACKBONE)}): name the backbone")
        out.append(m)
    return tuple(out)


# ---------------------------------------------------------------- a claim

def parse_atlas_claim(obj, file: str) -> AtlasClaim:
    """Validate one parsed claim file (a dict from yaml.safe_load) read from `file` (its stem
    must be the id); AtlasError on any fault."""
    w = _Where(file)
    _mapping(obj, CLAIM_KEYS, CLAIM_KEYS, w)
    cid = obj["id"]
    if not isinstance(cid, str) or not SLUG.fullmatch(cid):
        (w / "id").fail(f"expected a lowercase slug (letters, digits, '-'), got {cid!r}")
    stem = Path(file).stem
    if cid != stem:
        (w / "id").fail(f"id {cid!r} differs from the file stem {stem!r}")
    ds, init, inc, tasks, num_tasks = _stream(obj["stream"], w / "stream")
    metric = obj["metric"]
    if metric not in METRICS:
        (w / "metric").fail(f"expected one of {', '.join(METRICS)}, got {metric!r} "
                            f"(nearest: {nearest(str(metric), METRICS)!r})")
    if not isinstance(obj["methods"], list) or len(obj["methods"]) < 2:
        (w / "methods").fail("expected a list of two or more methods, the claimed winner first")
    methods = tuple(_method(m, i, w / "methods" / i) for i, m in enumerate(obj["methods"]))
    methods = _resolve_unstated(methods, ds.name, w / "methods")
    top = max(methods, key=lambda m: m.accuracy)
    if top.accuracy > methods[0].accuracy:
        (w / "methods" / 0 / "accuracy").fail(
            f"the claimed winner {methods[0].label} reports {methods[0].accuracy:g}%, below "
            f"{top.label}'s {top.accuracy:g}% (methods[{top.index}]); list the winner first")
    claim = AtlasClaim(cid, _text(obj["claim"], w / "claim"), _source(obj["source"], w / "source"),
                       ds.name, init, inc, tasks, num_tasks, ds.num_classes, ds.image_shape,
                       metric, methods, file, ds.loadable, ds.input_dtype)
    from clbudget.analysis.atlas_prices import check_priceable
    for m in methods:   # what the byte models refuse, refused here, before anything runs
        check_priceable(claim, m, w / "methods" / m.index)
    return claim


def load_atlas_claim(path) -> AtlasClaim:
    import yaml
    path = Path(path)
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise AtlasError(f"{path.name}: not valid YAML: {' '.join(str(e).split())}") from None
    return parse_atlas_claim(obj, path.name)


def load_atlas(folder) -> list[AtlasClaim]:
    """Every claim file (*.yaml, *.yml) of a folder, validated, sorted by file name.  The
    first fault stops the whole atlas (one line naming the file and the field)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AtlasError(f"{folder}: not a folder of claim files")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise AtlasError(f"{folder}: no claim files (*.yaml)")
    claims = [load_atlas_claim(p) for p in files]
    seen: dict[str, str] = {}
    for c in claims:
        if c.id in seen:
            raise AtlasError(f"{c.file}: id: {c.id!r} is also the id of {seen[c.id]}")
        seen[c.id] = c.file
    return claims
