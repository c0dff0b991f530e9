"""resmlp: the residual MLP BMC's reference trains on pre-extracted feature vectors.

Reference: fostiropoulos/stream_benchmark stream_benchmark/backbone/MLP.py `ResMLP(input_size,
output_size)`, the backbone `SequentialStream.get_backbone` returns for its stored features
(datasets/seq_stream.py: feat_size 768).  Line by line:
- the input flattened (`x.flatten(1, -1)`), then `input_projection = Linear(D, 128)`, no
  activation after it;
- two `ResLinear` blocks, expansion 2: block 1 `ResLinear(128, 128)`, block 2
  `ResLinear(256, 128)`, each `relu(bn2(fc2(relu(bn1(fc1(x))))) + shortcut(x))` with
  fc1 Linear(in, 128) + BatchNorm1d(128), fc2 Linear(128, 256) + BatchNorm1d(256), shortcut
  Linear(in, 256, bias=False) + BatchNorm1d(256) (a projection in both blocks, as the reference);
- Dropout(p=0.3) after each block (in train mode only);
- features = the second block's output after its dropout, width 256 (`returnt="features"`);
- every Linear weight Xavier-normal, every bias 0 (`_init_weights`); BatchNorm at PyTorch's
  defaults (weight 1, bias 0).
Parameters of the backbone on D inputs: 128 D + 128 (projection) + 83,584 (block 1) + 132,736
(block 2) = 128 D + 216,448; D = 768: 314,752 (tests/test_features.py counts them by hand
from the layer shapes).

Split (MEMO's generalized / specialized, nets/backbones.py): generalized = projection + block 1
+ its dropout, specialized = block 2 + its dropout.  BMC's per-layer distance
(methods/bmc.py `interim_features`) taps each part's output: the two residual blocks.

Deviations:
- the classifier is clbudget's `Classifier` head (nn.Linear(256, K) at PyTorch's default
  initialisation, or PyCIL's rows where a method asks), not the reference's Xavier-normal
  `classifier`: the head belongs to the method (nets/classifier.py), the same for every backbone.
- `BatchNorm1d` of a single-sample batch in train mode normalises with the running statistics
  (`SafeBatchNorm1d`) where PyTorch raises: the reference's loaders drop the last partial batch
  (`drop_last=True`), clbudget's loop keeps every sample, and 129 samples at batch 128 leave one.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

# methods whose mechanism lives in convolutions: refused on the MLP (experiment/run.py prepare)
CONV_METHODS = {"clr": "reprograms each kxk convolution with a depthwise kernel",
                "mind": "masks convolution weights and keeps a BatchNorm2d set per task"}

HIDDEN = 128      # MLP.py ResMLP: hidden_dim = 128
EXPANSION = 2     # MLP.py ResMLP: expansion = 2
DROPOUT = 0.3     # MLP.py ResMLP: nn.Dropout(p=0.3)


class SafeBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that, given one sample in train mode, uses its running statistics (and
    leaves them alone) instead of raising; any larger batch is PyTorch's BatchNorm1d."""

    def forward(self, x):
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


class ResLinear(nn.Module):
    """MLP.py `ResLinear(in_planes, planes, expansion)`."""

    def __init__(self, in_planes: int, planes: int, expansion: int = EXPANSION):
        super().__init__()
        self.fc1 = nn.Linear(in_planes, planes)
        self.bn1 = SafeBatchNorm1d(planes)
        self.out_planes = out = expansion * planes
        self.fc2 = nn.Linear(planes, out)
        self.bn2 = SafeBatchNorm1d(out)
        self.shortcut = nn.Sequential(nn.Linear(in_planes, out, bias=False),
                                      SafeBatchNorm1d(out))

    def forward(self, x):                       # (B, in) -> (B, out)
        out = F.relu(self.bn1(self.fc1(x)))
        out = self.bn2(self.fc2(out))
        return F.relu(out + self.shortcut(x))


@torch.no_grad()
def xavier_init(module: nn.Module) -> nn.Module:
    """MLP.py `_init_weights`: Linear weights Xavier-normal, biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                m.bias.zero_()
    return module


def resmlp_parts(input_shape) -> tuple[nn.Module, nn.Module, int]:
    """(generalized, specialized, feature width) of the reference's ResMLP without its
    classifier, over inputs of `input_shape`: (D,) feature vectors, or any shape flattened (the
    reference flattens; (3, 32, 32) images are 3,072 inputs).  nets/backbones.py wraps them in
    a `Backbone` named resmlp (this module imports nothing of clbudget: the import runs one way)."""
    d = 1
    for s in input_shape:
        d *= int(s)
    if d < 1:
        raise ValueError(f"resmlp needs at least one input feature, got shape {tuple(input_shape)}")
    block1 = ResLinear(HIDDEN, HIDDEN)
    block2 = ResLinear(block1.out_planes, HIDDEN)
    generalized = nn.Sequential(nn.Flatten(1), nn.Linear(d, HIDDEN), block1, nn.Dropout(DROPOUT))
    specialized = nn.Sequential(block2, nn.Dropout(DROPOUT))
    return xavier_init(generalized), xavier_init(specialized), block2.out_planes
