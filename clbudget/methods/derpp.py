"""derpp — Dark Experience Replay++ (Buzzega, Boschini, Porrello, Abati & Calderara,
NeurIPS 2020), as in Mammoth.

Reference: aimagelab/mammoth models/derpp.py; buffer utils/buffer.py (`reservoir`,
`get_data`); hyper-parameters utils/best_args.py seq-cifar10 'derpp' 500.
Recipe: per data set (`dataset_recipes`): on cifar100 (or a tree declared so by
`--normalization mammoth:cifar100`) `mammoth-seq-cifar100-derpp` (50 epochs, batch 32, lr
0.03, decay at 35/45; train/recipe_book.py cites Mammoth's files); elsewhere
`mammoth-seq-cifar10-derpp` (lr 0.03, batch 32, 50 epochs per task, SGD without
momentum or weight decay, constant lr; crop + flip; Mammoth's normalisation constants).
Mechanism: a reservoir buffer is filled during training: every incoming batch is offered to
it (un-augmented images, labels, and the logits the network produced for the batch in that
very step, before the update).  The loss of a step is

    CE(net(x), y) + alpha * MSE(net(x'), z') + beta * CE(net(x''), y'')

with (x', z') and (x'', y'') two independent uniform samples (without replacement) of
`minibatch_size` buffer entries, augmented like the stream; the replay terms start as soon as
the buffer holds anything.  The new batch's CE runs over all K classes of the stream (the head
is full-width), as Mammoth's class-IL setting does: unseen classes are not masked during
training.  Logits are stored over all K classes, in float32.  Head: Mammoth's full-width
`nn.Linear`, PyTorch's default initialisation, never re-initialised (`head_init = "mammoth"`).

Retains: the network (backbone + full-width head); the buffer: uint8 images,
int16 labels, float32 logits (K per entry).  Under `--codec jpeg:Q | png | down:S`
(methods/codecs.py `CodecMemory.reservoir`): the images as one encoded byte buffer with an
int64 offset and an int32 length per slot, instead of the uint8 pixels; labels and logits
as raw.  Replay decodes only the sampled entries (`memory.images_at`, one codec call per
replay batch, two per step).

Deviations: none in the mechanism.  Storage: Mammoth's buffer keeps images as
float32 tensors; we keep the uint8 pixels (the same values, 1/4 of the bytes).  Backbone: the
run's (resnet32 on CIFAR by default), not Mammoth's ResNet18 for which best_args were tuned;
pass `--backbone mammoth-resnet18` for Mammoth's (backbone/ResNetBlock.py resnet18).
alpha/beta are seq-cifar10's (500) on every data set: Mammoth's models/config/derpp.yaml
seq-cifar100 500 has alpha 0.3 (best_args.py: 0.1), pass `--option alpha=0.3`.  Under a codec (not in Mammoth or the paper): the
reservoir's slot decisions are unchanged, but a new image whose code does not fit in the free
bytes evicts random held entries, so near the byte limit the buffer is no longer an exactly
uniform sample: images that compress worse are a little under-represented
(`evicted_for_bytes` in the row counts the entries dropped); replay trains on decoded
(for jpeg/down, lossy) images while the stored logits are of the original ones.
Guarded by: tests/test_parity.py (test_derpp_step_matches_the_reference_loss,
test_reservoir_keeps_every_offered_example_with_equal_probability), mutants derpp.*;
the encoded reservoir by tests/test_codecs_reservoir.py and mutants codecs.reservoir_*.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from clbudget.methods.finetune import Finetune
from clbudget.methods.registry import register


@dataclass(frozen=True)
class DERppConfig:
    # Buzzega et al. 2020, appendix hyper-parameter table, Seq-CIFAR-10 with a 500-example
    # buffer (= Mammoth utils/best_args.py best_args['seq-cifar10']['derpp'][500]): lr 0.03,
    # batch 32, minibatch 32, alpha 0.2, beta 0.5, 50 epochs (datasets/seq_cifar10.py);
    # Mammoth's SGD defaults: no momentum, no weight decay (utils/args.py optim_mom 0,
    # optim_wd 0), and no learning-rate schedule for Seq-CIFAR-10: the recipe
    # `mammoth-seq-cifar10-derpp`.  Every task alike.
    alpha: float = 0.2           # weight of the logit-matching (MSE) term
    beta: float = 0.5            # weight of the buffer-label CE term
    minibatch_size: int = 32     # buffer entries per replay term


@register("derpp")
class DERpp(Finetune):
    Config = DERppConfig
    recipe = "mammoth-seq-cifar10-derpp"
    dataset_recipes = {"cifar100": "mammoth-seq-cifar100-derpp"}   # cifar10, others: seq-cifar10
    head_init = "mammoth"

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        self.memory = self.new_memory(logits_dim=ctx.stream.num_classes)

    def learn(self, task):
        net, memory, cfg = self.net, self.memory, self.config
        trainer = self.trainer
        augment = self.phase().augment

        def replay_batch():
            i = memory.sample(cfg.minibatch_size, trainer.generator)
            return trainer.pipeline(memory.images_at(i), augment, trainer.generator), i

        def step(xb, yb, idx):
            logits = net(xb)                                        # (B, K)
            loss = F.cross_entropy(logits, yb)
            if len(memory):
                bx, i = replay_batch()
                loss = loss + cfg.alpha * F.mse_loss(net(bx).float(), memory.logits[i])
                bx, i = replay_batch()
                loss = loss + cfg.beta * F.cross_entropy(net(bx), memory.labels[i].long())
            # offer the un-augmented new images with the logits produced for them now
            memory.reservoir(task.x[idx], yb, trainer.generator, logits.detach())
            return loss

        return trainer.fit(net.parameters(), task.x, task.y, step, self.phase(),
                           f"{self.name} task {task.index}", modules=[net])

    def retained(self):
        return super().retained() + self.memory.retained()
