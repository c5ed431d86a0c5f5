"""Training, prediction and evaluation of sequence models.

:func:`fit` trains a registered model (:mod:`emotools.models`) on chunks of
the training recordings with the CCC loss (the AVEC / MuSe baselines'
choice; ``mse`` was the original project's), Adam with a linear learning-rate
warm-up and a cosine decay, gradient clipping, and early stopping on the dev CCC of full
recordings; the best epoch's weights are kept. It returns a
:class:`TrainedModel` that carries everything prediction needs: the model,
its config, the feature normalization and the target names.

* Determinism: the same seed gives the same metrics on CPU (the caller's
  random state is left untouched).
* ``checkpoint_dir``: ``last.pt`` after every epoch (model, optimizer,
  random states, history, early-stopping state) so an interrupted fit
  resumes where it stopped; ``model.pt`` + ``model.json`` for the best
  model. Every checkpoint loads with ``torch.load(weights_only=True)``.
* :func:`evaluate` reports both CCC protocols, always named:
  concatenated recordings (AVEC 2019 / MuSe) and the mean per-recording CCC
  (AVEC 2018).
"""

from .options import *  # noqa: F403
from .options import __all__ as _options_all
from .trainer import *  # noqa: F403
from .trainer import __all__ as _trainer_all

__all__ = [*_options_all, *_trainer_all]
