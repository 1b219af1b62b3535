"""The algorithm core of or1: pure functions over torch tensors.

No I/O, no models, no config objects, no torch.distributed: tensors in, tensors (and
plain floats) out. Shape letters used in every docstring of this package:

- B: responses (sequences) in a batch, i.e. prompts x group size.
- T: response length in tokens (right-padded; a mask marks the response tokens).
- V: vocabulary size.
- G: groups (distinct prompts) in a batch.
- P: problems (prompts) in an evaluation or filtering table; n: samples per problem.
"""

from or1.algo.advantages import GRPO_EPS, group_advantages
from or1.algo.entropy import AdaptiveEntropyController, FixedEntropyCoef, token_entropy
from or1.algo.entropy_diagnosis import (
    AutoTargetEntropyController,
    CollapseSignals,
    EntropyCollapseAlarm,
    likely_causes,
)
from or1.algo.filters import (
    drop_solved,
    group_accuracy,
    keep_by_pass_rate,
    reject_uniform_groups,
    solved_prompts,
    zero_truncated_rewards,
)
from or1.algo.losses import (
    AGGREGATIONS,
    KL_KINDS,
    POLICY_LOSSES,
    aggregate_tokens,
    gspo_loss,
    kl_penalty,
    loss_normalizer,
    micro_token_mean_normalizer,
    policy_loss,
    register_policy_loss,
)
from or1.algo.metrics import avg_at_k, pass_at_k, pass_at_k_table

__all__ = [
    "AGGREGATIONS",
    "GRPO_EPS",
    "KL_KINDS",
    "POLICY_LOSSES",
    "AdaptiveEntropyController",
    "AutoTargetEntropyController",
    "CollapseSignals",
    "EntropyCollapseAlarm",
    "FixedEntropyCoef",
    "aggregate_tokens",
    "avg_at_k",
    "drop_solved",
    "group_accuracy",
    "group_advantages",
    "gspo_loss",
    "keep_by_pass_rate",
    "kl_penalty",
    "likely_causes",
    "loss_normalizer",
    "micro_token_mean_normalizer",
    "pass_at_k",
    "pass_at_k_table",
    "policy_loss",
    "register_policy_loss",
    "reject_uniform_groups",
    "solved_prompts",
    "token_entropy",
    "zero_truncated_rewards",
]
