"""``or1 plan``: the per-GPU memory budget of a run from the model's config.json alone.

- ``budget``: the formulas (documented there) -> ``Plan``;
- ``report``: the rich table, the ``or1 plan`` command, ``preflight`` at a run's start.
"""

from or1.plan.budget import Plan, Settings, make_plan, settings_of
from or1.plan.report import preflight
from or1.plan.shape import ModelShape, model_shape

__all__ = ["ModelShape", "Plan", "Settings", "make_plan", "model_shape", "preflight", "settings_of"]
