"""The base of every config section, and constants shared by several sections."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# RECIPE.md "Evaluation": the suffix of every math prompt (also added to bare questions).
RECIPE_PROMPT_SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
