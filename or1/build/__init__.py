"""From a Config to the objects of a run: problems, tokenizer, model (warmed up), engines.

- ``problems``: ``load_problems``, ``fit_prompts``, ``encode_prompt``;
- ``models``: tiny models and tokenizers built from configs, local HF directories;
- ``gguf``: GGUF files converted once to a cached HF directory;
- ``start``: ``load_model`` (the policy a run starts from, warmed up), ``seed_everything``;
- ``engines``: ``make_engines`` (the ``distributed.backend`` registry);
- ``entropy``: ``make_entropy_controller`` (``algo.entropy.mode``).
"""

from or1.build.engines import BACKENDS, make_engines
from or1.build.entropy import make_entropy_controller
from or1.build.problems import encode_prompt, fit_prompts, load_problems
from or1.build.start import Loaded, check_lengths, load_model, seed_everything

__all__ = [
    "BACKENDS",
    "Loaded",
    "check_lengths",
    "encode_prompt",
    "fit_prompts",
    "load_model",
    "load_problems",
    "make_engines",
    "make_entropy_controller",
    "seed_everything",
]
