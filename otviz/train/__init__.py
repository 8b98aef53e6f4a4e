"""Training: configurations, background runs with checkpoints, run directories."""
from .config import PRESETS, Stage, TrainConfig, otus_zee_config  # noqa: F401
from .run import Run, load_run  # noqa: F401
from .trainer import TrainingRun, resolve_device  # noqa: F401
