"""The reference recipes: each method's training settings as its reference code has them.

Names say whose settings they are ("pycil-icarl" = PyCIL's models/icarl.py constants).  A
recipe holds the phases its methods need; `recipes.resolve` picks a method's phases out of it.

PyCIL recipes (G-U-N/PyCIL models/<method>.py module constants; utils/data.py iCIFAR10/100):
SGD momentum 0.9, batch 128, MultiStepLR gamma 0.1 per epoch; augmentation random crop (pad 4)
+ horizontal flip + ColorJitter(brightness=63/255); normalisation PyCIL's published constants
(CIFAR-10 std 0.2023/0.1994/0.2010, as PyCIL has it), else the whole training set's.
Mammoth recipes (aimagelab/mammoth models/config/*.yaml, utils/best_args.py, datasets/seq_*.py,
utils/args.py; per data set, see methods/best_args.py): SGD without momentum or weight decay,
batch 32 (Seq-MNIST 10); crop + flip only (Seq-MNIST none); Mammoth's constants (CIFAR-10 std
0.2470/0.2435/0.2615).
"""
from __future__ import annotations

from dataclasses import replace

from clbudget.train.loop import LoopConfig
from clbudget.train.recipe import Recipe, register_recipe

# PyCIL's first task of every CIFAR method (models/*.py init_epoch 200, init_lr 0.1,
# init_milestones [60, 120, 170], init_weight_decay 5e-4, batch 128, SGD momentum 0.9)
PYCIL_FIRST = LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 170), weight_decay=5e-4)


def pycil(name: str, source: str, later: LoopConfig, first: LoopConfig = PYCIL_FIRST) -> Recipe:
    return register_recipe(Recipe(name, source, (("first", first), ("later", later)),
                                  augmentation="crop-flip-brightness63", normalization="pycil"))


pycil("pycil-finetune", "PyCIL models/finetune.py (epochs 80, milestones 40/70, "
      "weight_decay 2e-4)",
      LoopConfig(epochs=80, lr=0.1, milestones=(40, 70), weight_decay=2e-4))
pycil("pycil-replay", "PyCIL models/replay.py (epochs 70, milestones 30/50, weight_decay 2e-4)",
      LoopConfig(epochs=70, lr=0.1, milestones=(30, 50), weight_decay=2e-4))


PYCIL_ICARL = pycil("pycil-icarl", "PyCIL models/icarl.py (epochs 170, milestones 80/120, "
                    "weight_decay 2e-4)",
                    LoopConfig(epochs=170, lr=0.1, milestones=(80, 120), weight_decay=2e-4))
pycil("pycil-wa", "PyCIL models/wa.py (epochs 170, milestones 60/100/140, weight_decay 2e-4)",
      LoopConfig(epochs=170, lr=0.1, milestones=(60, 100, 140), weight_decay=2e-4))
pycil("pycil-lwf", "PyCIL models/lwf.py (init_milestones 60/120/160; epochs 250, milestones "
      "60/120/180/220, weight_decay 2e-4)",
      LoopConfig(epochs=250, lr=0.1, milestones=(60, 120, 180, 220), weight_decay=2e-4),
      first=LoopConfig(epochs=200, lr=0.1, milestones=(60, 120, 160), weight_decay=5e-4))
pycil("pycil-der", "PyCIL models/der.py = exps/memo.json (epochs 170, milestones 80/120/150, "
      "weight_decay 2e-4)",
      LoopConfig(epochs=170, lr=0.1, milestones=(80, 120, 150), weight_decay=2e-4))

# Mammoth's recipes, one per data set and training (methods/best_args.py holds the per-buffer
# tables and the rule that picks a file; every value read at aimagelab/mammoth
# e75a491c69fd729edeb01431afb753d9157d9a81).  Common to all: utils/args.py SGD without momentum
# or weight decay (optim_mom 0, optim_wd 0), sched_multistep_lr_gamma 0.1 by default.
# Seq-CIFAR-10: datasets/seq_cifar10.py (and datasets/configs/seq-cifar10/default.yaml) 50
# epochs, batch 32, no schedule, RandomCrop(32, padding 4) + flip; lr 0.03 for derpp
# (utils/best_args.py seq-cifar10 derpp, every buffer), 0.1 for ewc_on
# (models/config/ewc_on.yaml seq-cifar10: lr 0.1, n_epochs 50; best_args.py had 0.03).
MAMMOTH = LoopConfig(epochs=50, batch_size=32, lr=0.03, momentum=0.0, weight_decay=0.0,
                     schedule="constant", milestones=())


def mammoth(name: str, source: str, cfg: LoopConfig) -> Recipe:
    return register_recipe(Recipe(name, source, (("first", cfg), ("later", cfg)),
                                  augmentation="crop-flip", normalization="mammoth"))


mammoth("mammoth-seq-cifar10-derpp", "Mammoth utils/best_args.py seq-cifar10 derpp (lr 0.03, "
        "batch 32, 50 epochs at 200/500/5120) + datasets/seq_cifar10.py (no schedule); SGD "
        "without momentum or weight decay (utils/args.py)", MAMMOTH)
mammoth("mammoth-seq-cifar10-ewc_on", "Mammoth models/config/ewc_on.yaml seq-cifar10 (lr 0.1, "
        "n_epochs 50) + datasets/seq_cifar10.py (batch 32, no schedule); SGD without momentum "
        "or weight decay (utils/args.py)", replace(MAMMOTH, lr=0.1))

# Seq-CIFAR-100 (datasets/seq_cifar100.py: 50 epochs, batch 32, multisteplr at [35, 45]).
# derpp: models/config/derpp.yaml seq-cifar100 500 (lr 0.03, dataset_config xder:
# datasets/configs/seq-cifar100/xder.yaml gamma 0.2).  ewc_on: Mammoth has no seq-cifar100
# configuration (models/config/ewc_on.yaml and best_args.py list none): the dataset's schedule
# at gamma 0.1 (utils/args.py) with seq-cifar10's lr 0.1 (ewc_on.yaml).
MAMMOTH_C100 = LoopConfig(epochs=50, batch_size=32, lr=0.03, momentum=0.0, weight_decay=0.0,
                          milestones=(35, 45), gamma=0.2)
MAMMOTH_C100_EWC = replace(MAMMOTH_C100, gamma=0.1, lr=0.1)
mammoth("mammoth-seq-cifar100-derpp", "Mammoth models/config/derpp.yaml seq-cifar100 500 (lr "
        "0.03) + datasets/configs/seq-cifar100/xder.yaml (50 epochs, batch 32, lr x0.2 at "
        "35/45)", MAMMOTH_C100)
mammoth("mammoth-seq-cifar100-ewc_on", "Mammoth datasets/seq_cifar100.py (50 epochs, batch 32, "
        "multisteplr 35/45, gamma 0.1 utils/args.py); lr 0.1 of models/config/ewc_on.yaml "
        "seq-cifar10 (Mammoth has no seq-cifar100 ewc_on configuration)", MAMMOTH_C100_EWC)

# Seq-TinyImageNet: utils/best_args.py seq-tinyimg (derpp at 200/500/5120 and ewc_on: lr 0.03,
# batch 32, n_epochs 100); datasets/seq_tinyimagenet.py: no schedule, RandomCrop(64, padding
# 4) + flip, its MEAN/STD.
mammoth("mammoth-seq-tinyimg-derpp", "Mammoth utils/best_args.py seq-tinyimg derpp (lr 0.03, "
        "batch 32, 100 epochs at 200/500/5120) + datasets/seq_tinyimagenet.py (no schedule)",
        replace(MAMMOTH, epochs=100))
mammoth("mammoth-seq-tinyimg-ewc_on", "Mammoth utils/best_args.py seq-tinyimg ewc_on (lr 0.03, "
        "batch 32, 100 epochs) + datasets/seq_tinyimagenet.py (no schedule)",
        replace(MAMMOTH, epochs=100))

# Seq-MNIST: utils/best_args.py seq-mnist (batch 10, n_epochs 1; lr 0.03, derpp 5120: 0.1);
# datasets/seq_mnist.py: TRANSFORM None (no augmentation), ToTensor only (pixels / 255: the
# "mammoth" constants of mnist are mean 0, std 1, streams/catalog.py).
MAMMOTH_MNIST = replace(MAMMOTH, epochs=1, batch_size=10, augment=False)
mammoth("mammoth-seq-mnist-derpp", "Mammoth utils/best_args.py seq-mnist derpp 200/500 (lr 0.03, "
        "batch 10, 1 epoch) + datasets/seq_mnist.py (no augmentation, no normalisation)",
        MAMMOTH_MNIST)
mammoth("mammoth-seq-mnist-derpp-5120", "Mammoth utils/best_args.py seq-mnist derpp 5120 (lr 0.1, "
        "batch 10, 1 epoch) + datasets/seq_mnist.py (no augmentation, no normalisation)",
        replace(MAMMOTH_MNIST, lr=0.1))
mammoth("mammoth-seq-mnist-ewc_on", "Mammoth utils/best_args.py seq-mnist ewc_on (lr 0.03, "
        "batch 10, 1 epoch) + datasets/seq_mnist.py (no augmentation, no normalisation)",
        MAMMOTH_MNIST)

# BMC's consolidation as stream_benchmark has it: models/bmc.py consolidate (l. 86-107: AdamW
# lr 0.01 at torch's default weight decay 0.01; ReduceLROnPlateau "min", threshold 1e-4,
# patience 10, factor 0.1 by default, stepped on the validation loss each epoch), _cons_forward
# (l. 51-52: mixup 0.4 while training), utils/bmc.py make_consolidation_dataloader (l. 95-121:
# 20% held out, ImbalancedDatasetSampler over buffer ids, drop_last), batch 64
# (hparams/defaults.json minibatch_size), 100 epochs (defaults.json bmc.cons_epochs); no
# augmentation (the stored features are of the un-augmented images)
BMC_CONSOLIDATION = LoopConfig(epochs=100, batch_size=64, optimizer="adamw", lr=0.01,
                               weight_decay=0.01, schedule="plateau", milestones=(), gamma=0.1,
                               patience=10, threshold=1e-4, mixup=0.4, validation=0.2,
                               sampler="balanced", augment=False)
register_recipe(Recipe(
    "bmc", "experts: PyCIL iCaRL CNN settings; consolidation: stream_benchmark models/bmc.py "
    "consolidate + utils/bmc.py make_consolidation_dataloader (AdamW lr 0.01, ReduceLROnPlateau "
    "patience 10 on a 20% validation split, mixup 0.4, sampler balanced by buffer), batch 64 "
    "(hparams/defaults.json minibatch_size), 100 epochs (defaults.json bmc.cons_epochs)",
    (("first", PYCIL_FIRST), ("later", PYCIL_ICARL.phase("later")),
     ("consolidation", BMC_CONSOLIDATION))))
# BMC on a feature stream (streams/features.py), the setting of the reference: its experts are
# its ResMLP's optimisation (models/__base_model.py: AdamW lr 0.01 at torch's default weight
# decay 0.01; hparams/defaults.json lr 0.01, batch_size 64, n_epochs 20, scheduler_patience 10,
# scheduler_threshold 1e-4; utils/train.py reset_optim_scheduler: ReduceLROnPlateau "min",
# factor 0.1), no augmentation (features are stored once); consolidation as "bmc".
# Deviations: training.py steps the plateau on the task's *test* loss and stops early after 10
# bad epochs; here the plateau steps on the mean training loss (no test data in training) and
# every epoch runs.
BMC_FEATURE_EXPERTS = LoopConfig(epochs=20, batch_size=64, optimizer="adamw", lr=0.01,
                                 weight_decay=0.01, augment=False,
                                 schedule="plateau", milestones=(), gamma=0.1,
                                 patience=10, threshold=1e-4)
register_recipe(Recipe(
    "bmc-features", "experts: stream_benchmark models/__base_model.py + hparams/defaults.json "
    "(AdamW lr 0.01, batch 64, 20 epochs, ReduceLROnPlateau patience 10) on feature vectors; "
    "consolidation: as the recipe bmc",
    (("first", BMC_FEATURE_EXPERTS), ("later", BMC_FEATURE_EXPERTS),
     ("consolidation", BMC_CONSOLIDATION))))
# CLR's main.py decays every epochs // 3 epochs (StepLR): at its 60 epochs that is the
# milestones 20, 40 held here; at another --epochs the milestones are scaled
# (`LoopConfig.with_epochs`), not recomputed as StepLR(epochs // 3) (7 epochs: 2, 5, where
# the reference would decay at 2, 4 and 6).
register_recipe(Recipe(
    "clr", "Channel-wise-Lightweight-Reprogramming main.py (Adam lr 1e-3, 60 epochs, StepLR "
    "epochs // 3, gamma 0.1, batch 32; no augmentation, dataset/dataloader_reader.py); "
    "pretrain: PyCIL's first task",
    (("task", LoopConfig(epochs=60, batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0,
                         milestones=(20, 40), gamma=0.1, augment=False)),
     ("pretrain", PYCIL_FIRST))))
register_recipe(Recipe(
    "mind", "MIND cifar100_exp.sh / parse.py / main.py (AdamW, batch 256; teacher lr 0.005, "
    "MultiStepLR [35] gamma 0.5; distillation lr 0.035, [40]); utils/transforms.py "
    "default_transforms (crop pad 4, flip, ColorJitter brightness 63/255)",
    (("teacher", LoopConfig(epochs=50, batch_size=256, optimizer="adam", lr=0.005,
                            weight_decay=0.0, milestones=(35,), gamma=0.5)),
     ("distill", LoopConfig(epochs=50, batch_size=256, optimizer="adam", lr=0.035,
                            weight_decay=0.0, milestones=(40,), gamma=0.5))),
    augmentation="crop-flip-brightness63"))
