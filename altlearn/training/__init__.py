"""The training loop, how it is set up, and what watches it.

- ``trainer``: ``Trainer``, built from a validated spec, runs epochs of a rule's steps; its state
  is what a checkpoint holds;
- ``build``: the set-up of a run in named steps (torch settings, data, rule, optimizer, schedule,
  compiled steps, diagnostics), in the order of its random draws;
- ``contract``: the checks that a rule's steps and optimizer give the loop what it needs;
- ``export``: the trained model for users: the training set's normalisation + the rule's module;
- ``observers``: the ``Observer`` interface every watcher of a run implements (tracking, progress,
  alignment) and the ``Outcome`` a run ends with;
- ``alignment``: the angle between a rule's update and backprop's, per layer;
- ``devices``: device choice, mixed precision, per-epoch metric sums without host syncs;
- ``progress``: the terminal display of a run.
"""

from altlearn.training.observers import Observer, Outcome
from altlearn.training.trainer import Trainer

__all__ = ["Observer", "Outcome", "Trainer"]
