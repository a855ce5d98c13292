"""Training: the phase loop and the optimizers by name.

- :mod:`~paradime_core.training.loop`: one phase = epochs of batches minimising a weighted
  loss sum (:func:`~paradime_core.training.loop.train_phase`).
- :mod:`~paradime_core.training.balancing`: the loss weights, fixed or ``auto`` (running magnitude).
- :mod:`~paradime_core.training.early_stopping`: a held-out split of the items, scored per epoch.
- :mod:`~paradime_core.training.optimizers`: every ``torch.optim`` optimizer, registered.
"""
