"""The claims atlas, part 3 of 5: the bytes each claimed method keeps across a task boundary,
under both of clbudget's conventions (DESIGN.md section 2).

- clbudget's own methods (`clbudget methods`) are priced by clbudget's own cost models
  (`budget/costs.py`), given the claim's stream, backbone, exemplars and, for expanding or
  per-task methods, the backbones the source says they keep.  Where the source says a method
  keeps a teacher or masks that clbudget's implementation does not (or the reverse), the price
  is clbudget's and the difference is noted.
- **priced-only** methods (`PRICED`: "priced, not runnable here") are one declarative row each:
  the classifier they keep, class statistics, per-exemplar extras, prompt layout, task tokens.
  The counts the claim file gives (`keeps`: backbones, teacher, exemplars, prompts, masks)
  complete the row.  What a row prices:
  - strict: every kept backbone's parameters and buffers (float32; BN statistics), the head
    (full width: every class of the stream), prompts and keys, task tokens, masks (one uint8
    per conv weight, as clbudget's MIND), class statistics, importance copies, the teacher
    (a copy of the kept network: backbones, head, tokens, prompts), exemplars (uint8 pixels
    + int16 labels) and their per-exemplar extras (float32);
  - memo: feature-extractor parameters x 4 B (all kept backbones, and the parts the features
    pass through: prompts and keys, task tokens, masks, adapters, MTL scaling weights) +
    exemplar pixels; no head, no BN statistics, no class statistics, no teacher, no labels.
- a claim's `keeps.extra_params` (the parameters the source says a method keeps beyond its
  backbones, head, prompts and masks) is priced by `extra_items`, for both kinds of method.
"""
from __future__ import annotations

from dataclasses import dataclass

from clbudget.analysis.atlas_shapes import (TRANSFORMER_DEPTH, atlas_backbone_stats,
                                            block_conv_pairs, conv_channel_pairs, is_built,
                                            network_input)

FLOAT = 4   # float32 bytes

PROMPT_METHODS = ("l2p", "dualprompt", "codaprompt")
# methods whose keeps.prompts, when given, states their task tokens (pool x length x dim): DyTox
TOKEN_METHODS = ("dytox",)

# Prompted layers when a claim's keeps.prompts gives no `layers` (and DualPrompt's G-prompt
# layers without `g_layers`): GT-RIPL/CODA-Prompt models/zoo.py @ 22948d28, the one code base
# that runs all three: L2P e_layers [0] (shallow), DualPrompt g_layers [0, 1] and e_layers
# [2, 3, 4], CODA-P e_layers [0, 1, 2, 3, 4].
PROMPT_LAYERS = {"l2p": 1, "dualprompt": 3, "codaprompt": 5}
G_LAYERS = 2


@dataclass(frozen=True)
class PricedMethod:
    """What a method keeps beyond the claim's counts.  `head`: linear (D_in x C + C, times
    `outputs_per_class`), cosine (D_in x C + a learned scale), lsc (`proxies` cosine proxies a
    class + a learned scale), task_heads (one LayerNorm + linear per task), prototypes (the
    class means are the classifier), none."""
    name: str
    paper: str
    reference: str               # where what it keeps is read
    head: str = "linear"
    proxies: int = 1
    outputs_per_class: int = 1
    concat: bool = False         # the head reads the concatenated features of all backbones
    concat_tasks: bool = False   # ... of one feature subspace a task (EASE's adapters)
    adapter_bottleneck: int = 0  # one adapter a transformer block a task, this bottleneck
    proxy_head: bool = False     # + the last task's cosine proxy head (D x inc + a scale)
    class_means: int = 0         # sets of one D_in mean a class (NME, prototypes)
    means_bytes: int = FLOAT     # ... at this dtype (numpy's float64 where the code says so)
    radius: bool = False         # one float32 scalar beside the prototypes (PASS)
    mtl_branches: int = 0        # kept backbones whose every conv carries an MTL scaling
    #                              weight (c_out x c_in x 1 x 1) beside its frozen weight
    conv_adapters: bool = False  # a 1x1 adapter beside every residual-block 3x3 conv (SSRE)
    backbones: int = 0           # the backbones it always keeps (0: as the claim says)
    task_bias: bool = False      # a (alpha, beta) pair per task (BiC)
    task_tokens: bool = False    # one D-vector per task (DyTox)
    importance: int = 0          # copies of all parameters (SI: Omega and the anchor)
    exemplar_floats: str = ""    # "logits" (C float32 an exemplar) or "score" (1)


PRICED: dict[str, PricedMethod] = {m.name: m for m in (
    PricedMethod("podnet", "Douillard et al., ECCV 2020",
                 "arthurdouillard/incremental_learning.pytorch @ c09fc54d options/podnet/"
                 "podnet_cnn_cifar100.yaml: cosine classifier, proxy_per_class 10, "
                 "learned_scaling; inclearn/models/icarl.py (PODNet's parent) build_examplars "
                 "l. 399: class means np.zeros((classes, features_dim)), float64",
                 head="lsc", proxies=10, class_means=1, means_bytes=8),
    PricedMethod("lucir", "Hou et al., CVPR 2019",
                 "PyCIL convs/linears.py CosineLinear / SplitCosineLinear: cosine weights and "
                 "one sigma", head="cosine"),
    PricedMethod("bic", "Wu et al., CVPR 2019",
                 "PyCIL utils/inc_net.py IncrementalNetWithBias: one BiasLayer (alpha, beta) "
                 "per task", task_bias=True),
    PricedMethod("eeil", "Castro et al., ECCV 2018", "paper Sec. 3: a linear head over all "
                 "classes, a distilled old model, a fixed exemplar memory"),
    PricedMethod("foster", "Wang et al., ECCV 2022",
                 "PyCIL models/foster.py FOSTERNet: fc over the concatenated features of its "
                 "backbones", concat=True),
    PricedMethod("dytox", "Douillard et al., CVPR 2022",
                 "arthurdouillard/dytox continual/dytox.py: task tokens (1 x D each), one "
                 "ContinualClassifier (LayerNorm(D) + Linear(D, classes of the task)) per task "
                 "(ind_clf 1-1)", head="task_heads", task_tokens=True),
    PricedMethod("l2p", "Wang et al., CVPR 2022",
                 "GT-RIPL/CODA-Prompt models/zoo.py L2P: per prompted layer a pool (pool x "
                 "length x D) and keys (pool x D); a linear head"),
    PricedMethod("dualprompt", "Wang et al., ECCV 2022",
                 "GT-RIPL/CODA-Prompt models/zoo.py DualPrompt: per E-layer a pool (pool x "
                 "length x D) and keys (pool x D), per G-layer g_length x D; a linear head"),
    PricedMethod("codaprompt", "Smith et al., CVPR 2023",
                 "GT-RIPL/CODA-Prompt models/zoo.py CodaPrompt: per layer components (pool x "
                 "length x D), keys and attention vectors (pool x D each); a linear head"),
    PricedMethod("gdumb", "Prabhu et al., ECCV 2020", "paper Sec. 3: a class-balanced memory "
                 "and the network trained on it"),
    PricedMethod("er", "Chaudhry et al., 2019 (arXiv 1902.10486)", "a reservoir memory of "
                 "images and labels, one network (Mammoth models/er.py)"),
    PricedMethod("agem", "Chaudhry et al., ICLR 2019", "an episodic memory of images and "
                 "labels, one network; reference gradients recomputed (Mammoth models/agem.py)"),
    PricedMethod("gem", "Lopez-Paz & Ranzato, NeurIPS 2017", "an episodic memory a task, one "
                 "network; past gradients recomputed (Mammoth models/gem.py)"),
    PricedMethod("gss", "Aljundi et al., NeurIPS 2019", "Mammoth models/gss.py: a buffer of "
                 "images, labels and one float score an exemplar", exemplar_floats="score"),
    PricedMethod("fdr", "Benjamin et al., ICLR 2019", "Mammoth models/fdr.py: a buffer of "
                 "images, labels and the network's outputs (C floats)", exemplar_floats="logits"),
    PricedMethod("si", "Zenke et al., ICML 2017", "Mammoth models/si.py: the anchor "
                 "(checkpoint) and big_omega, one copy each of the parameters", importance=2),
    PricedMethod("pass", "Zhu et al., CVPR 2021",
                 "PyCIL models/pa2s.py: update_fc(total_classes * 4) (rotation-augmented "
                 "labels), a prototype a class and one radius", outputs_per_class=4,
                 class_means=True, radius=True),
    PricedMethod("simplecil", "Zhou et al., 2023 (arXiv 2303.07338)", "Sec. 4: a frozen "
                 "pre-trained backbone and a prototype a class as the classifier",
                 head="prototypes"),
    PricedMethod("aper", "Zhou et al., 2023 (arXiv 2303.07338)", "Sec. 4: the pre-trained and "
                 "the adapted backbone, prototypes of their concatenated features",
                 head="prototypes", concat=True),
    PricedMethod("fetril", "Petit et al., WACV 2023", "Sec. 3: a backbone frozen after the "
                 "first task, a prototype a class (pseudo-features), a linear classifier",
                 class_means=True),
    PricedMethod("coil", "Zhou et al., ACM MM 2021", "PyCIL models/coil.py: a linear head, "
                 "the old model, an exemplar memory"),
    PricedMethod("ease", "Zhou et al., CVPR 2024 (arXiv 2403.12030)",
                 "sun-hailong/CVPR24-Ease @ 51849e72 utils/inc_net.py: AdaptFormer adapters "
                 "(down D x 64 + 64, up 64 x D + D; layernorm none, fixed scalar 0.1; ffn_num 64 "
                 "in exps/*.json), one a block a task (vit_ease get_new_adapter, "
                 "add_adapter_to_list); fc CosineLinear(D x T, C) + sigma; proxy_fc "
                 "CosineLinear(D, inc) + sigma", head="cosine", concat_tasks=True,
                 adapter_bottleneck=64, proxy_head=True),
    PricedMethod("mnemonics", "Liu et al., CVPR 2020 (arXiv 2002.10211)",
                 "yaoyao-liu/class-incremental-learning @ 6a92ab08 mnemonics-training/1_train/"
                 "trainer/mnemonics.py: from the second phase tg_model is resnetmtl32 (l. 106; "
                 "utils/conv2d_mtl.py l. 33-34: a frozen weight and an mtl_weight (c_out, c_in, "
                 "1, 1) a conv), fc SplitCosineLinear (l. 115, 127: cosine weights + one "
                 "sigma), ref_model = deepcopy(tg_model) (l. 104, 122), class_means "
                 "np.zeros((64, 100, 2)) float64, two sets (l. 385), the optimised exemplars "
                 "written back as uint8 images (utils/process_mnemonics.py tensor2im, l. 26). "
                 "Not counted: the training set the code holds (`prototypes`) and its herding "
                 "ranks; the released ResNet-32's 1x1-conv shortcuts (priced as the claim's "
                 "backbone)", head="cosine", class_means=2, means_bytes=8, mtl_branches=1),
    PricedMethod("aanets", "Liu et al., CVPR 2021 (arXiv 2010.05063)",
                 "yaoyao-liu/POD-AANets @ 01f10e8d inclearn/models/rmm.py l. 259-282: from the "
                 "second task AANets(convnet_1, convnet_2), convnet_1 a resnet18_mtl (inclearn/"
                 "convnet/resnet_mtl.py: every conv a Conv2dMtl, tools/conv_mtl.py l. 33-34: "
                 "frozen weight + mtl_weight (c_out, c_in, 1, 1), no bias) and convnet_2 a "
                 "plain resnet18, mixed 0.5/0.5 at every level (lib/network/aanets.py l. "
                 "125-150: no learned aggregation weight); PODNet's cosine classifier, 10 "
                 "proxies a class, learned scaling (options/config_imagenet_subset_5phase."
                 "yaml); old model = the whole network (new_base.py l. 285); class means "
                 "np.zeros((classes, features_dim)) float64 (new_base.py l. 351)",
                 head="lsc", proxies=10, class_means=1, means_bytes=8, mtl_branches=1,
                 backbones=2),
    PricedMethod("ssre", "Zhu et al., CVPR 2022 (arXiv 2203.06359)",
                 "zhukaii/SSRE @ 5475c980 utils/Trainer_cvpr.py: from the second task the "
                 "backbone is rebuilt in mode 'parallel_adapters' (l. 97-104; resnet18_no1.py "
                 "conv_block: a 1x1 adapter, no bias, beside every block 3x3 conv), adapters "
                 "merged into the convs and zeroed, not dropped, after each task (afterTrain "
                 "l. 199-206); old_model = model.copy() (l. 195); classifier fc_IL_base, a "
                 "linear head (train_cvpr.sh --classifier fc_IL_base); one 512-d prototype a "
                 "class, float32 (protoSave l. 271-300; its int64 class labels not counted)",
                 class_means=1, conv_adapters=True),
)}


def own_methods() -> tuple[str, ...]:
    from clbudget.budget.costs import COST_MODELS
    return tuple(COST_MODELS)


def method_names() -> tuple[str, ...]:
    return own_methods() + tuple(m for m in PRICED if m not in own_methods())


def priced_only(name: str) -> bool:
    return name not in own_methods()


# ---------------------------------------------------------------- priced-only byte models

def prompt_counts(method: str, p: dict) -> dict[str, int]:
    """Parameters of a prompt method's prompts and keys (float32 each)."""
    layers = p.get("layers", PROMPT_LAYERS[method])
    dim, pool, length = p["dim"], p["pool"], p["length"]
    counts = {"prompts": layers * pool * length * dim, "keys": layers * pool * dim}
    if method == "dualprompt":
        counts["g_prompts"] = p.get("g_layers", G_LAYERS) * p["g_length"] * dim
    if method == "codaprompt":
        counts["attention"] = layers * pool * dim
    return counts


def head_params(pm: PricedMethod, d_in: int, C: int, T: int, D: int = 0, inc: int = 0) -> int:
    k = pm.outputs_per_class
    n = {"linear": d_in * C * k + C * k, "cosine": d_in * C + 1,
         "lsc": d_in * C * pm.proxies + 1, "task_heads": T * 2 * d_in + d_in * C + C,
         "prototypes": 0, "none": 0}[pm.head]
    return n + (2 * T if pm.task_bias else 0) + (D * inc + 1 if pm.proxy_head else 0)


def adapter_params(pm: PricedMethod, backbone: str, D: int, T: int) -> int:
    """AdaptFormer adapters, one a transformer block a task: down (D x b + b), up (b x D + D)."""
    b = pm.adapter_bottleneck
    return T * TRANSFORMER_DEPTH[backbone] * (2 * D * b + b + D) if b else 0


def feature_extras(pm: PricedMethod, claim, m) -> dict[str, int]:
    """Parameters a priced-only row adds inside the feature extractor (float32 each): MTL
    scaling weights of its MTL branches and SSRE's parallel 1x1 adapters."""
    shape = claim.image_shape
    return {"mtl_scales": pm.mtl_branches * conv_channel_pairs(m.backbone, shape),
            "conv_adapters": block_conv_pairs(m.backbone, shape) if pm.conv_adapters else 0}


def priced_items(pm: PricedMethod, claim, m, stats, convention: str) -> list[tuple]:
    """The (name, kind, bytes) items of a priced-only method under `convention`."""
    from clbudget.budget.costs import StreamShape, exemplar_items
    k, C, T = m.keeps, claim.num_classes, claim.num_tasks
    B, D = k.backbones, stats.out_dim
    d_in = D * B if pm.concat else D * T if pm.concat_tasks else D
    n = k.n_exemplars(C)
    stream = StreamShape(T, claim.image_shape, C, claim.input_dtype)
    prompts = prompt_counts(pm.name, k.prompts) if pm.name in PROMPT_METHODS else {}
    tokens = 0
    if pm.task_tokens:   # the source's statement (pool x length x dim), else one D-vector a task
        p = k.prompts
        tokens = p["pool"] * p["length"] * p["dim"] if p else T * D
    adapters = adapter_params(pm, m.backbone, D, T)
    inside = feature_extras(pm, claim, m)
    items = [(f"prompts.{name}", "params", FLOAT * c) for name, c in prompts.items()]
    items += [("task_tokens", "per_task", FLOAT * tokens),
              ("adapters", "per_task", FLOAT * adapters),
              ("masks", "masks", B * stats.conv_weights if k.masks else 0)]
    items += [(name, "params", FLOAT * c) for name, c in inside.items()]
    if convention == "memo":
        return ([("backbones.feature_params", "params", B * stats.params_bytes)] + items
                + exemplar_items(stream, n, "memo"))
    head = FLOAT * head_params(pm, d_in, C, T, D, claim.inc or 0)
    out = [("backbones.params", "params", B * stats.params_bytes),
           ("backbones.buffers", "buffers", B * stats.buffers_bytes),
           ("head", "params", head)] + items
    means = C * d_in * (pm.class_means or (1 if pm.head == "prototypes" else 0))
    out.append(("class_stats", "class_stats", pm.means_bytes * means
                + (FLOAT if pm.radius else 0)))
    out.append(("importance", "importance", pm.importance * (B * stats.params_bytes + head)))
    if k.teacher:   # a copy of the kept network
        out.append(("old_model", "old_model", B * stats.state_bytes + head + FLOAT * tokens
                    + FLOAT * (sum(prompts.values()) + adapters + sum(inside.values()))))
    out += exemplar_items(stream, n, "strict")
    per = {"logits": C, "score": 1, "": 0}[pm.exemplar_floats]
    out.append((f"memory.{pm.exemplar_floats or 'extra'}", "exemplar_aux", n * per * FLOAT))
    return out


def extra_items(m, items: list[tuple], convention: str) -> tuple[list, list]:
    """A claim's `keeps.extra_params` priced into a method's items: (items, notes).

    - outside the feature extractor (`in_features: false`, the default: prototypes, class
      means, bias layers): class statistics, strict only, IN PLACE OF the method's own class
      statistics (clbudget's iCaRL class means, a row's prototypes and radius): the source's
      count is priced, a difference from the engine's is noted;
    - inside it (`in_features: true`: adapters, scaling weights the features pass through):
      added under both conventions (`check_priceable` refuses it where the method's own
      price already holds such parameters).
    Bytes: count x the stated dtype (default float32)."""
    e = m.keeps.extra
    if e is None:
        return items, []
    what = f"{e.count:,} {e.dtype} extra parameters ({e.n_bytes:,} B)"
    if e.in_features:
        return items + [("extra_params", "params", e.n_bytes)], []
    if convention == "memo":
        return items, []
    own = sum(b for _, kind, b in items if kind == "class_stats")
    kept = [i for i in items if i[1] != "class_stats"]
    notes = []
    if own != e.n_bytes:
        notes.append(f"the source states {what} for {m.label}; the engine's class statistics "
                     f"for {m.name} are {own:,} B (priced as the source states)")
    return kept + [("extra_params", "class_stats", e.n_bytes)], notes


# ---------------------------------------------------------------- both kinds

def own_stream(claim, m):
    from clbudget.budget.costs import StreamShape, cost_model
    model = cost_model(m.name)
    T = m.keeps.backbones if (model.expanding or model.per_task) else claim.num_tasks
    return model, StreamShape(T, claim.image_shape, claim.num_classes, claim.input_dtype,
                              network_input=network_input(m.backbone, claim.image_shape)
                              if is_built(m.backbone) else None)


def check_priceable(claim, m, where) -> None:
    """Refuse, through `where.fail` (atlas_claims._Where), what a byte model cannot price."""
    image = len(claim.image_shape) == 3
    if image == (m.backbone == "resmlp-clip-features"):
        (where / "backbone").fail(
            f"{m.backbone} on {claim.dataset}'s {'x'.join(map(str, claim.image_shape))} "
            f"{'images' if image else 'feature vectors'}: "
            + ("use an image backbone" if image else "use resmlp-clip-features"))
    if priced_only(m.name):
        pm = PRICED[m.name]
        stats = atlas_backbone_stats(m.backbone, claim.image_shape)
        if m.keeps.masks and not stats.conv_weights:
            (where / "keeps" / "masks").fail(f"per-weight masks are priced over conv weights; "
                                             f"{m.backbone} has none counted")
        if pm.adapter_bottleneck and m.backbone not in TRANSFORMER_DEPTH:
            (where / "backbone").fail(f"{m.name} adds adapters to a transformer's blocks; "
                                      f"use one of {', '.join(TRANSFORMER_DEPTH)}")
        if pm.conv_adapters and not block_conv_pairs(m.backbone, claim.image_shape):
            (where / "backbone").fail(f"{m.name}'s adapters are priced on its own ResNet-18 "
                                      f"(no BatchNorm, biased convs): use resnet18-ssre")
        if pm.backbones and pm.backbones != m.keeps.backbones:
            (where / "keeps" / "backbones").fail(
                f"{m.name} keeps {pm.backbones} backbones (its row in atlas_prices.PRICED "
                f"cites the code), not {m.keeps.backbones}")
        inside = sum(feature_extras(pm, claim, m).values()) + adapter_params(
            pm, m.backbone, stats.out_dim, claim.num_tasks)
        if m.keeps.extra and m.keeps.extra.in_features and inside:
            (where / "keeps" / "extra_params" / "in_features").fail(
                f"{m.name}'s row already prices {inside:,} parameters inside the feature "
                f"extractor; state extra_params only for what it does not price")
        return
    model, _ = own_stream(claim, m)
    if not (model.expanding or model.per_task) and m.keeps.backbones != 1:
        (where / "keeps" / "backbones").fail(
            f"clbudget's {m.name} keeps one network, not {m.keeps.backbones}; only der, memo, "
            f"memo2 (backbones/blocks) and clr, mind (per-task modules) expand")
    if m.keeps.n_exemplars(claim.num_classes) and not model.uses_exemplars:
        (where / "keeps" / "exemplars").fail(f"clbudget's {m.name} stores no exemplars; set 0 "
                                             f"(or name the method that does)")
    if not is_built(m.backbone) and m.name in ("memo", "memo2", "clr", "mind"):
        (where / "backbone").fail(f"clbudget's {m.name} byte model needs a backbone clbudget "
                                  f"builds (a ResNet), not {m.backbone}")


@dataclass(frozen=True)
class Price:
    strict: object           # Ledger
    memo: object             # Ledger
    priced_only: bool
    notes: tuple[str, ...]

    def bytes(self, convention: str) -> int:
        return getattr(self, convention).total_bytes


def price_method(claim, m) -> Price:
    """Both conventions' ledgers of one claimed method, and what differs from the source."""
    from clbudget.budget.ledger import Ledger
    stats = atlas_backbone_stats(m.backbone, claim.image_shape)
    notes: list[str] = []

    def priced(items, convention):
        items, more = extra_items(m, items, convention)
        notes.extend(more)
        return Ledger.of(items, convention)

    if priced_only(m.name):
        pm = PRICED[m.name]
        return Price(*(priced(priced_items(pm, claim, m, stats, c), c)
                       for c in ("strict", "memo")), True, tuple(notes))
    model, stream = own_stream(claim, m)
    n = m.keeps.n_exemplars(claim.num_classes)
    if is_built(m.backbone):   # clbudget's cost model on the backbone it builds
        from clbudget.analysis.atlas_shapes import BACKBONES
        name = BACKBONES[m.backbone].clbudget_name
        items = [[(i.name, i.kind, i.n_bytes) for i in model.cost(stream, name, n, c).items]
                 for c in ("strict", "memo")]
    else:                      # its ledger function on the formula's shapes
        items = [model.ledger(stream, stats, n, c) for c in ("strict", "memo")]
    ledgers = [priced(i, c) for i, c in zip(items, ("strict", "memo"))]
    has_teacher = bool(ledgers[0].bytes_of("old_model"))
    if m.keeps.teacher != has_teacher:
        notes.append(f"the source says {m.label} keeps {'a' if m.keeps.teacher else 'no'} "
                     f"teacher; clbudget's {m.name} keeps {'one' if has_teacher else 'none'} "
                     f"(priced as clbudget keeps it)")
    if m.keeps.masks != bool(ledgers[0].bytes_of("masks")):
        notes.append(f"the source says {m.label} keeps {'' if m.keeps.masks else 'no '}masks; "
                     f"priced as clbudget's {m.name}")
    if not model.budgeted:
        notes.append(f"{m.name} is an upper bound clbudget never budgets")
    return Price(ledgers[0], ledgers[1], False, tuple(notes))
