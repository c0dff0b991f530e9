"""Replay from a reservoir of past examples: a method defined outside clbudget."""
import torch
import torch.nn.functional as F
from clbudget.methods.base import Method
from clbudget.nets.classifier import Classifier


class ReservoirReplay(Method):
    uses_exemplars = True  # allocator: one network, exemplars fill the rest of the budget

    def __init__(self, ctx, config=None):
        super().__init__(ctx, config)
        s = ctx.stream
        self.net = Classifier.create(ctx.allocation.backbone, s.image_shape, s.num_classes)
        self.net.to(self.device)
        self.memory = self.new_memory()   # uint8 images + int16 labels, allocated size

    def learn(self, task):
        x, y = (torch.cat(pair) for pair in zip((task.x, task.y), self.memory.data()))
        step = lambda xb, yb, idx: F.cross_entropy(self.net(xb)[:, :self.seen], yb)
        return self.trainer.fit(self.net.parameters(), x, y, step, self.phase(),
                                modules=[self.net])

    def end_task(self, task):
        self.memory.reservoir(task.x, task.y, self.trainer.generator)

    def scores(self, x):
        return self.net(x)

    def retained(self):  # everything kept across tasks: the ledger is computed from it
        return [("net", "params", self.net)] + self.memory.retained()

    def feature_modules(self):  # what the MEMO convention counts
        return [self.net.backbone]
