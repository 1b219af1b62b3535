"""Evaluation metrics: unbiased pass@k and avg@k (RECIPE.md "Evaluation").

pass@k uses the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k),
in its product form 1 - prod_{i=n-c+1}^{n} (1 - k / i), which never forms huge
binomials. avg@k is the mean accuracy over all n samples of every problem (the paper's
headline avg@32). Correctness tables must be binary.
"""

import math
from collections.abc import Iterable

from torch import Tensor


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased probability that at least one of k samples (out of n, c correct) is correct.

    Args:
        n: Samples drawn for the problem.
        c: Correct samples, 0 <= c <= n.
        k: Budget, 1 <= k <= n.

    Returns:
        pass@k estimate in [0, 1].

    Example:
        >>> pass_at_k(4, 1, 2)  # 1 - C(3, 2) / C(4, 2) = 1 - 3/6
        0.5
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _check_correct(correct: Tensor) -> None:
    if correct.dim() != 2 or correct.numel() == 0:
        raise ValueError(f"correct must be a non-empty [P, n] tensor, got {tuple(correct.shape)}")
    if not bool(((correct == 0) | (correct == 1)).all()):
        raise ValueError("correct must hold only 0/1 (or bool) values")


def avg_at_k(correct: Tensor) -> float:
    """Mean accuracy over all samples: mean over problems of each problem's accuracy.

    Args:
        correct: [P, n] 0/1 or bool, n samples for each of P problems.

    Returns:
        avg@n in [0, 1].

    Example:
        >>> avg_at_k(torch.tensor([[1, 0, 0, 0], [1, 1, 0, 1]]))  # (1/4 + 3/4) / 2
        0.5
    """
    _check_correct(correct)
    return float(correct.double().mean())


def pass_at_k_table(correct: Tensor, ks: Iterable[int]) -> dict[int, float]:
    """pass@k averaged over problems, for each k in ``ks``.

    Args:
        correct: [P, n] 0/1 or bool.
        ks: Budgets, each 1 <= k <= n.

    Returns:
        ``{k: mean over problems of pass_at_k(n, c_p, k)}``.

    Example:
        >>> pass_at_k_table(torch.tensor([[1, 0, 0, 0], [1, 1, 0, 1]]), [1, 4])
        {1: 0.5, 4: 1.0}
    """
    _check_correct(correct)
    n = correct.shape[1]
    counts = [int(c) for c in correct.long().sum(dim=1)]
    return {k: sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in ks}
