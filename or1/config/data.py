"""``data``: built-in tasks, data files, the offline filter and deduplication."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from or1.config.base import Section


class ArithConfig(Section):
    """The tiny-arith task: chains of integer additions/subtractions."""

    n_train: int = Field(2000, gt=0, description="training problems generated")
    n_test: int = Field(200, gt=0, description="held-out problems generated")
    min_terms: int = Field(2, ge=2, description="fewest numbers in a chain")
    max_terms: int = Field(4, ge=2, description="most numbers in a chain")
    max_operand: int = Field(99, ge=2, description="largest number in a chain")
    # The warm-up teacher slips on a step with this probability (see data/tasks/arith.py).
    teacher_error_rate: float = Field(
        0.25, ge=0.0, lt=1.0, description="chance the warm-up teacher slips on a step"
    )
    # A teacher that sometimes writes two steps on one line gives answers of two lengths,
    # the shorter harder for a small model: the study's truncation finding needs a longer
    # answer to be a more accurate one (docs/study.md "Truncation").
    teacher_merge_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="chance the teacher writes a step and the next on one line"
    )


class CodeConfig(Section):
    """The tiny-code task: small Python function specs with hidden call-based tests
    (or1/data/tasks/coding.py)."""

    n_train: int = Field(1000, gt=0, description="training problems generated")
    n_test: int = Field(100, gt=0, description="held-out problems generated")
    n_tests: int = Field(8, ge=2, description="hidden tests per problem")
    # The warm-up teacher writes a slipped body with this probability (see coding.py).
    teacher_error_rate: float = Field(
        0.5, ge=0.0, lt=1.0, description="chance the warm-up teacher writes a slipped body"
    )


class ReasoningGymConfig(Section):
    """The reasoning-gym task: problems from a reasoning-gym procedural dataset whose
    answers the math reward can verify (numbers), e.g. chain_sum (or1/data/tasks/
    reasoning_gym.py)."""

    dataset: str = Field("chain_sum", description="a reasoning-gym dataset name")
    params: dict[str, Any] = Field(
        {}, description="the dataset's settings (difficulty), e.g. {min_terms: 2, max_terms: 3}"
    )
    n_train: int = Field(2000, gt=0, description="training problems drawn")
    n_test: int = Field(100, gt=0, description="held-out problems drawn")
    seed: int = Field(0, description="fixes the problems: the same splits for every train.seed")
    prompt_suffix: str | None = Field(
        None, description="appended to each question; None: the recipe's suffix (boxed answer)"
    )


class OfflineFilterConfig(Section):
    """``or1 data filter``: drop prompts the model to be trained solves 0/N or N/N."""

    samples: dict[str, int] = Field(
        {"math": 16, "code": 8}, description="N per ability (RECIPE.md: 16 math, 8 code)"
    )
    default_samples: int = Field(16, gt=0, description="N for an ability not in samples")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the N samples")
    top_p: float = Field(1.0, gt=0, le=1.0, description="nucleus sampling of the N samples")
    max_tokens: int | None = Field(None, gt=0, description="None: the first stage's length")
    low: float = Field(0.0, ge=0, description="drop pass rates <= low")
    high: float = Field(1.0, le=1, description="drop pass rates >= high")
    shard_size: int = Field(32, gt=0, description="prompts per progress shard (resume unit)")
    reuse: bool = Field(True, description="use extra_info.model_difficulty when present")
    difficulty_key: str | None = Field(
        None, description="key in a model_difficulty mapping; None: the model directory name"
    )
    difficulty_scale: int = Field(
        16, gt=0, description="an integer model_difficulty counts correct samples of this many"
    )


class DedupConfig(Section):
    """``or1 data dedup``: exact and near-duplicate removal, decontamination."""

    exact: bool = Field(True, description="drop exact duplicates (normalized text)")
    near: bool = Field(True, description="drop near duplicates (MinHash LSH, or1[dedup])")
    near_threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard estimate")
    shingle_words: int = Field(3, gt=0, description="words per shingle for MinHash")
    num_perm: int = Field(128, gt=0, description="MinHash permutations")
    decontaminate: bool = Field(True, description="drop prompts that overlap eval_sets")
    eval_sets: list[str] = Field(
        ["aime24", "aime25"], description="benchmark names (eval.*) or parquet/jsonl paths"
    )
    ngram: int = Field(13, gt=0, description="word n-gram size for decontamination")
    ngram_overlap: float = Field(
        0.3, gt=0, le=1, description="shared n-grams / the smaller text's n-grams to drop"
    )


class DataConfig(Section):
    """Where problems come from: a built-in task or files (parquet/jsonl/HF datasets)."""

    # A name in or1.data.tasks.TASKS; tiny-mix is tiny-arith and tiny-code in one run.
    task: Literal["tiny-arith", "tiny-code", "tiny-mix", "reasoning-gym"] | None = Field(
        "tiny-arith", description="a built-in task; null: read data.train and data.test"
    )
    arith: ArithConfig = ArithConfig()
    code: CodeConfig = CodeConfig()
    reasoning_gym: ReasoningGymConfig = ReasoningGymConfig()
    train: str | list[str] | None = Field(
        None, description="training data: parquet/jsonl file, datasets dir, hf:name, or a list"
    )
    test: str | list[str] | None = Field(
        None, description="held-out data evaluated with the benchmarks (same forms as train)"
    )
    skip_bad_rows: bool = Field(
        False, description="false: a bad row is a DataError; true: skip and count it"
    )
    filter: OfflineFilterConfig = OfflineFilterConfig()
    dedup: DedupConfig = DedupConfig()
