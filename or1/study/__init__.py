"""The entropy study in miniature (issues 7, 17): the paper's entropy findings, decided by
paired bootstrap tests.

``or1 study entropy [--quick] [--seeds N] [--out runs/study-entropy] [--jobs 2]`` trains
the preset (full ``study-arith``, quick ``tiny-arith``; ``--preset`` chooses another)
under the variants of RECIPE.md "Findings to reproduce in miniature", several seeds each,
and writes into ``--out``:

- ``findings.json``: per finding, its paired tests (statistic, estimate, 95% bootstrap
  interval, verdict; ``or1/study/findings.py`` and ``bootstrap.py``), the finding's verdict
  (reproduced = every test is), and per variant and seed the descriptive statistics below.
- ``plots/<finding>.png``: overlaid entropy, held-out avg@k and training accuracy (or
  truncation ratio) curves, seed means; and ``report.html`` with the tables and plots.
- ``runs/<mode>/<variant>-s<seed>/``: ordinary run directories (``or1 report`` works);
  ``eval/step_<N>_problems.csv`` keeps the per-problem held-out table of every segment.

Statistics of one run (``run_stats``), with the entropy column ``entropy_full`` (the
full-vocabulary entropy of the rollout policy at the sampling temperature, measured on
the kept rollouts of every step that updated) and "tail" = the last 20% of those steps:
``final_entropy`` (tail mean), ``initial_entropy`` (first 20%), ``entropy_auc`` (mean
over all steps: the area under the entropy curve per step), ``peak_entropy`` (maximum of
the tail-wide moving average), ``final_accuracy`` / ``base_accuracy`` (held-out avg@k at
the last step / before training), ``accuracy_gain``, ``final_train_accuracy`` and
``final_truncation`` (tail means of the training rollouts' accuracy and truncation ratio),
``mean_entropy_coef`` (mean alpha_k: whether an adaptive controller ever acted).

Choices of the study (stated, not hidden):

- The study base is one stage of ``max_response_length`` tokens with the entropy term
  off (``algo.entropy.mode=off``) for every finding except the entropy-control one: the
  adaptive controller would push back on exactly the collapse being measured.
- The off-policy runs are ``LONG`` (2) times the others' length, so a collapse has time to
  cost accuracy (``variants.py``).
- ``clip_high`` acts only when N_SGD > 1 (with N_SGD 1 the ratio is exactly 1, nothing is
  clipped), and at the presets' lr no ratio reaches the bound: the clip-higher finding is
  measured at N_SGD ``CLIP_N_SGD`` (8) and lr ``HOT_LR`` (1e-4), against eps_high 0.2.
- The truncation finding uses a shorter stage (``truncation_length``) where the base
  truncates a share of its responses; everything else uses a length where it does
  not truncate. Held-out evals always use ``max_response_length`` tokens. Its base has
  its own warm-up (``Variant.warmup``): a teacher that writes a step and the next on one
  line with probability ``MERGE_RATE``, so that a longer answer is a more accurate one
  (the drive masking releases) and only the shorter one fits the stage.
- Held-out curves: each run is trained in segments of ``eval_every`` steps, resuming
  from the checkpoint written at each segment end (exact resume), with an avg@k
  evaluation after each segment (a run killed during an evaluation redoes it, which
  ``eval.every`` would skip). The training is the same as an uninterrupted run's.
- Findings are decided by paired tests, not fixed margins: a variant and its reference
  share the seed (base model, held-out problems, training prompts per step), so accuracy
  is compared per held-out problem and entropy or truncation per step; the bootstrap
  resamples seeds and then problems or steps (``bootstrap.py``).

Resumable: a run whose ``study_run.json`` says done is skipped; an unfinished run
continues from its checkpoint. A run directory made with other settings is an error
(choose another ``--out``), never silently mixed in.
"""

from or1.study.bootstrap import Paired, bootstrap, decide
from or1.study.cli import add_arguments, main, run_study
from or1.study.findings import FINDINGS, Finding, PairedTest, evaluate_finding, evaluate_findings
from or1.study.report import findings_markdown, write_report
from or1.study.runner import Study
from or1.study.stats import RunData, mean_stats, run_stats
from or1.study.variants import VARIANTS, StudySettings, Variant

__all__ = [
    "FINDINGS",
    "VARIANTS",
    "Finding",
    "Paired",
    "PairedTest",
    "RunData",
    "Study",
    "StudySettings",
    "Variant",
    "add_arguments",
    "bootstrap",
    "decide",
    "evaluate_finding",
    "evaluate_findings",
    "findings_markdown",
    "main",
    "mean_stats",
    "run_stats",
    "run_study",
    "write_report",
]
