"""Training ensembles: S networks from a prior trained at once, observed over time.

The flow (DESIGN.md): prior -> optax training of S models in one ``vmap``
(:mod:`~nnft.training.trainer`) -> at each measurement time the observations
(:mod:`~nnft.training.observe`) -> the one driver (:func:`nnft.engine.drive`, with the
training source and a recorder, :mod:`~nnft.training.source`) -> an xarray Dataset with
G1, G2, G4c per time from :func:`nnft.moment_estimator` (:mod:`~nnft.training.dataset`).

- Models: model ``s`` starts from ``prior.sample(fold_in(key_init, s))`` and reads the data
  in its own order; the models are split over the devices of a mesh (axis "model").
- Losses (:mod:`~nnft.training.losses`): "mse", "power", "cross-entropy", means over the
  batch. Optimizers (:mod:`~nnft.training.optim`): "sgd", "momentum" in the duality form
  (:func:`heavy_ball`), "adam"; learning rate times ``prior.learning_rate_scale()``
  (eq. 106) and optional per-layer multipliers; ``trainable`` restricts training to some
  layers.
- Observations at the measurement steps (always including step 0): fields on the test
  points, train/test losses, the empirical NTK on a probe set, its spectrum and relative
  change since step 0, singular values of chosen weights, the rms of the last hidden layer
  (where the prior exposes it) and of its change since step 0.
- Divergence: a model whose loss or parameters become non-finite is frozen, its step is
  recorded in ``diverged_at`` and it is masked out of every later estimate.
- Checkpoints: the driver's, after each measurement (``training-checkpoint.npz``, no
  pickle); ``resume=True`` continues from it and refuses one made for other work.
"""

from nnft.training.config import TrainingConfig, log_times
from nnft.training.data import DATASETS, Data, make_data, regression_data, sine_target
from nnft.training.dataset import correlators_at, frozen_ntk_theory, training_dataset
from nnft.training.losses import LOSSES, pointwise_loss
from nnft.training.observe import changes_since_start, make_observer, relative_change
from nnft.training.optim import (
    OPTIMIZERS,
    check_layers,
    heavy_ball,
    layer_names,
    learning_rate_scales,
    make_optimizer,
    scale_by_tree,
    trainable_mask,
)
from nnft.training.source import (
    CHECKPOINT,
    TrainingResult,
    recorder,
    train_ensemble,
    training_source,
)
from nnft.training.trainer import StepInfo, Trainer, TrainState, make_trainer, training_work

__all__ = [
    "CHECKPOINT", "DATASETS", "LOSSES", "OPTIMIZERS", "Data", "StepInfo",
    "TrainState", "Trainer", "TrainingConfig", "TrainingResult", "changes_since_start",
    "check_layers", "correlators_at", "frozen_ntk_theory", "heavy_ball", "layer_names",
    "learning_rate_scales", "log_times", "make_data", "make_observer", "make_optimizer",
    "make_trainer", "pointwise_loss", "recorder", "regression_data", "relative_change",
    "scale_by_tree", "sine_target", "train_ensemble", "trainable_mask", "training_dataset",
    "training_source", "training_work",
]
