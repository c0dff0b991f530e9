"""icarl — iCaRL: Incremental Classifier and Representation Learning (Rebuffi et al., CVPR 2017),
as implemented in PyCIL (Zhou et al.).

Reference: G-U-N/PyCIL models/icarl.py (loss, `_KD_loss`), models/base.py
(`build_rehearsal_memory` with fixed_memory false as exps/icarl.json, `_reduce_exemplar`,
`_construct_exemplar`, `_eval_nme`), utils/inc_net.py (`IncrementalNet.update_fc`).
Recipe: `pycil-icarl` (values below; crop + flip + brightness 63/255; PyCIL's constants).

Mechanism:
- representation: trained on the new task plus the exemplar memory with
      CE(logits[:, :seen], y) + KD_T(logits[:, :old], old_net(x)[:, :old])
  (weight 1, T = 2), the old network being a frozen copy made at the end of the previous task;
- memory: class-balanced, capacity // seen exemplars per class, new classes chosen by herding
  on L2-normalised features, old classes keep a prefix of their herding order
  (`ExemplarMemory.rebalance`, as PyCIL's `build_rehearsal_memory`);
- classifier: nearest-mean-of-exemplars (NME).  After each task every seen class's mean is
  recomputed with the current network from its exemplars: mean of the L2-normalised features,
  normalised again (PyCIL `_reduce_exemplar` / `_construct_exemplar`).  `scores` are the
  negative squared distances of the normalised feature to each mean (PyCIL `_eval_nme`,
  sqeuclidean), so the task-agnostic accuracy is NME's.  `cnn_scores` gives the linear head's.
- both accuracies, as PyCIL reports them (models/base.py `eval_task` returns `cnn_accy` and,
  since iCaRL keeps `_class_means`, `nme_accy`; trainer.py logs both curves and matrices):
  a row's `accuracy` is NME's (`accuracy.headline = "nme"`, the paper's classifier, Rebuffi
  et al. section 2.1), also under `accuracy.nme`, and the linear head's is `accuracy.cnn`
  (matrix, last, average incremental, forgetting, task-aware), from the same evaluation
  after every task.  PyCIL prints no single headline; papers citing PyCIL's iCaRL quote NME.
  Both classifiers' curves, task-agnostic and task-aware, are the accuracy over every seen
  test image (experiment/metrics.py `seen_accuracy`; PyCIL's accuracy() "total" is
  correct / len(y_true)), so on uneven tasks (B50Inc5) the first task weighs by its images.

Retains: the network; the old network (kind `old_model`, kept for the next task's
distillation, at the allocation's `store_dtype`: nets/stored.py); the exemplar memory (uint8 images, int16 labels); the class means, a (K, D)
float32 tensor (kind `class_stats`).

Defaults (PyCIL models/icarl.py): T = 2, KD weight 1; first task 200 epochs, lr 0.1, decay 0.1
at 60/120/170, weight decay 5e-4; later tasks 170 epochs, lr 0.1, decay at 80/120, weight decay
2e-4; batch 128, SGD momentum 0.9 (recipe `pycil-icarl`).  Memory size comes from the budget.

Deviations from the paper, all PyCIL's: the paper trains with sigmoid binary cross-entropy whose
old-class targets are the old network's sigmoid outputs; PyCIL (and we) use softmax
cross-entropy plus temperature-2 knowledge distillation.  The paper's code also averages
horizontally flipped exemplars into the class means; PyCIL does not, so `flip_means` defaults
to False (set it to True for the paper's means).  Class means are computed on un-augmented
images in eval mode, as both do.  Deviations from PyCIL: the full-width head (finetune.py;
arriving rows initialised as SimpleLinear, computes the same).
Guarded by: tests/test_parity.py (test_icarl_step_is_ce_plus_kd_and_nme_uses_reference_means,
test_herding_order_matches_the_reference_formula,
test_class_balanced_memory_herds_new_classes_and_keeps_old_prefixes,
test_memory_after_a_task_is_the_reference_herding_of_the_networks_features,
test_pycil_heads_initialise_arriving_rows_as_simple_linear),
tests/test_protocol.py (test_icarl_rows_carry_nme_and_cnn_accuracies_by_value,
test_icarl_task_aware_curves_of_both_classifiers_weigh_tasks_by_test_images), mutants
icarl.*, shared.*, protocol.icarl_*.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clbudget.methods.losses import kd_loss
from clbudget.methods.finetune import KeepsTeacher
from clbudget.methods.registry import register
from clbudget.methods.replay import Replay


@dataclass(frozen=True)
class ICaRLConfig:
    T: float = 2.0             # PyCIL models/icarl.py: T = 2
    kd_weight: float = 1.0     # PyCIL: loss = loss_clf + loss_kd
    flip_means: bool = False   # PyCIL: no flip; Rebuffi et al.'s code: flip


def normalize(f: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (PyCIL adds EPSILON = 1e-8 to the norm)."""
    return f / (f.norm(dim=1, keepdim=True) + 1e-8)


def nme_scores(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Nearest-mean-of-exemplars scores: -||f/|f| - mu_c||^2.  features (B, D), means (K, D)
    -> (B, K); the nearest mean scores highest."""
    f = normalize(features.float())
    sq = f.pow(2).sum(1, keepdim=True) - 2 * f @ means.t() + means.pow(2).sum(1)   # (B, K)
    return -sq.clamp_min(0)


@register("icarl")
class ICaRL(KeepsTeacher, Replay):
    Config = ICaRLConfig
    recipe = "pycil-icarl"
    headline = "nme"                       # the paper's classifier; PyCIL logs both
    also_scores = {"cnn": "cnn_scores"}    # PyCIL's cnn_accy (models/base.py eval_task)

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        self.class_means = torch.zeros((s.num_classes, self.net.backbone.out_dim),
                                       dtype=torch.float32, device=self.device)   # (K, D)

    def learn(self, task):
        x, y = self.training_data(task)
        old, seen, T, w = self.old, self.seen, self.config.T, self.config.kd_weight

        def step(xb, yb, idx):
            logits = self.net(xb)                                        # (B, K)
            loss = F.cross_entropy(logits[:, :seen], yb)
            if old:
                with torch.no_grad():
                    teacher = self.teacher_logits(xb)                    # (B, old)
                loss = loss + w * kd_loss(logits[:, :old], teacher, T)
            return loss
        return self.trainer.fit(self.net.parameters(), x, y, step, self.phase(),
                                f"{self.name} task {task.index}", modules=[self.net])

    def end_task(self, task):
        super().end_task(task)            # herding rebalance of the memory; the teacher copy
        self.update_class_means()

    @torch.no_grad()
    def update_class_means(self) -> None:
        """Every seen class's mean from its exemplars with the current network."""
        features = self.features_of(self.net)
        mx, my = self.memory.data()
        self.class_means.zero_()
        for c in torch.unique(my).tolist():
            xc = mx[my == c]
            mean = normalize(normalize(features(xc)).mean(0, keepdim=True))          # (1, D)
            if self.config.flip_means:   # Rebuffi et al.: average in the mirrored exemplars
                mean = mean + normalize(normalize(features(xc.flip(3))).mean(0, keepdim=True))
            self.class_means[c] = normalize(mean)[0]

    def scores(self, x):
        return nme_scores(self.net.features(x), self.class_means)

    def cnn_scores(self, x):
        """The linear head's scores (PyCIL reports them as 'CNN' accuracy)."""
        return self.net(x)

    def retained(self):
        return super().retained() + [("class_means", "class_stats", self.class_means)]
