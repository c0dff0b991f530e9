"""The one training loop (`Trainer.fit`, `LoopConfig`, `Pipeline`), the per-method recipes
that configure it, FLOP counting and option-field checks.  Below `methods/` (every method
trains through it) and above `budget/`; it never imports a method or the experiment layer."""
