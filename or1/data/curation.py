"""Dedup and decontamination of training problems (RECIPE.md "Data").

Three passes, in this order, each over what the previous one kept; the first occurrence
(in input order, so earlier sources win) is kept:

1. decontamination: drop a problem whose word 13-grams (the n of the GPT-3
   contamination study) overlap an evaluation problem's (AIME24/25 by default): the
   shared n-grams must cover at least 30% of the smaller n-gram set. Departure from
   "any shared 13-gram": competition problems share boilerplate 13-grams ("... where m
   and n are relatively prime positive integers. Find m+n"), which flagged a third of
   AIME24 against AIME25. A text shorter than n words is contaminated when its whole
   word sequence occurs inside the other text.
2. exact duplicates: same normalised question text.
3. near duplicates: MinHash (datasketch) over word shingles with LSH candidate search;
   a candidate counts when its estimated Jaccard similarity is >= the threshold (0.8).

Normalisation: the recipe's prompt suffix is removed first (otherwise its 13 words
would match every suffixed eval prompt), then NFKC and lower case; tokens are runs of
letters/digits and the operators + - * / = < > ^ % ( ) (so "2+3" and "2-3" differ);
other punctuation and LaTeX markup ($, backslashes, braces) are ignored.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from or1.config import RECIPE_PROMPT_SUFFIX, DedupConfig
from or1.data.problem import Problem
from or1.errors import ConfigError

# Words, and the operators that change a math problem (2+3 vs 2-3); other punctuation
# and LaTeX markup ($, \\, braces) are dropped.
_TOKEN = re.compile(r"\w+|[+\-*/=<>^%()]", re.UNICODE)
BOILERPLATE = (RECIPE_PROMPT_SUFFIX,)
MINHASH_SEED = 1  # fixed: the same data gives the same dedup decisions

CONTAMINATION, EXACT, NEAR = "contamination", "exact-duplicate", "near-duplicate"


@dataclass(frozen=True)
class Item:
    """A problem and where it came from (for the report)."""

    source: str
    row: int
    problem: Problem


@dataclass(frozen=True)
class Removal:
    """One removed problem: why, and the problem it matched (kept or eval)."""

    uid: str
    source: str
    row: int
    reason: str  # contamination | exact-duplicate | near-duplicate
    match: str  # uid of the kept duplicate, or "<eval set>:<uid>"
    detail: str  # the shared n-gram, or the estimated Jaccard similarity


@dataclass
class CurationResult:
    kept: list[Item]
    removed: list[Removal] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.kept) + len(self.removed)

    def counts(self) -> dict[str, int]:
        counts = Counter(r.reason for r in self.removed)
        return {reason: counts.get(reason, 0) for reason in (CONTAMINATION, EXACT, NEAR)}

    def report(self) -> dict[str, Any]:
        """The JSON report: totals, counts by reason, settings, every removal."""
        return {
            "total": self.total,
            "kept": len(self.kept),
            "removed": len(self.removed),
            "by_reason": self.counts(),
            "settings": self.settings,
            "removals": [asdict(r) for r in self.removed],
        }

    def text(self, examples: int = 3) -> str:
        """A short human summary with a few examples per reason."""
        lines = [f"{self.total} problems in, {len(self.kept)} kept, {len(self.removed)} removed"]
        for reason, n in self.counts().items():
            lines.append(f"  {reason}: {n}")
            for r in [r for r in self.removed if r.reason == reason][:examples]:
                lines.append(f"    {r.uid} ({r.source} row {r.row}) ~ {r.match}: {r.detail}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- text


def words(text: str) -> list[str]:
    """Normalised words of a problem text (suffix removed, NFKC, lower case)."""
    for boilerplate in BOILERPLATE:
        text = text.replace(boilerplate, " ")
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def ngrams(tokens: Sequence[str], n: int) -> set[str]:
    """Word n-grams as space-joined strings; a shorter text gives no n-gram."""
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def exact_key(text: str) -> str:
    return hashlib.sha1(" ".join(words(text)).encode()).hexdigest()


# --------------------------------------------------------------------------- passes


@dataclass
class EvalIndex:
    """Word n-grams of evaluation problems, for overlap queries."""

    n: int
    grams: dict[str, list[int]] = field(default_factory=dict)  # n-gram -> eval ids
    labels: list[str] = field(default_factory=list)  # eval id -> "<set>:<uid>"
    sizes: list[int] = field(default_factory=list)  # eval id -> number of its n-grams
    texts: list[str] = field(default_factory=list)  # eval id -> " normalised text "

    @classmethod
    def build(cls, eval_sets: dict[str, Sequence[Problem]], n: int) -> EvalIndex:
        index = cls(n)
        for set_name, problems in eval_sets.items():
            for p in problems:
                tokens = words(p.question)
                grams = ngrams(tokens, n)
                for gram in grams:
                    index.grams.setdefault(gram, []).append(len(index.labels))
                index.labels.append(f"{set_name}:{p.uid}")
                index.sizes.append(len(grams))
                index.texts.append(f" {' '.join(tokens)} ")
        return index

    def match(self, tokens: list[str], min_overlap: float) -> tuple[str, str] | None:
        """(eval label, evidence) of the eval problem this text overlaps most, if the
        shared n-grams cover >= min_overlap of either text's n-grams."""
        grams = ngrams(tokens, self.n)
        shared: Counter[int] = Counter()
        example: dict[int, str] = {}
        for gram in grams:
            for eid in self.grams.get(gram, ()):
                shared[eid] += 1
                example.setdefault(eid, gram)
        best, best_fraction = None, 0.0
        for eid, count in shared.items():
            fraction = count / min(len(grams), self.sizes[eid])
            if fraction > best_fraction:
                best, best_fraction = eid, fraction
        if best is not None and best_fraction >= min_overlap:
            detail = f"{best_fraction:.0%} of {self.n}-grams shared, e.g. '{example[best]}'"
            return self.labels[best], detail
        return self._short_match(tokens)

    def _short_match(self, tokens: list[str]) -> tuple[str, str] | None:
        """Texts shorter than n words: one contains the other's whole word sequence."""
        if not tokens:
            return None
        text = f" {' '.join(tokens)} "
        for eid, eval_text in enumerate(self.texts):
            if self.sizes[eid] == 0 and eval_text.strip() and eval_text in text:
                return self.labels[eid], "contains the whole (short) eval problem"
            if len(tokens) < self.n and text in eval_text:
                return self.labels[eid], "is contained in the eval problem"
        return None


def decontaminate(
    items: Sequence[Item],
    eval_sets: dict[str, Sequence[Problem]],
    *,
    n: int = 13,
    min_overlap: float = 0.3,
) -> tuple[list[Item], list[Removal]]:
    """Drop items whose word n-grams overlap an evaluation problem's.

    The shared n-grams must cover ``min_overlap`` of the smaller of the two n-gram sets:
    a single shared n-gram is not enough, since competition problems share boilerplate
    ("where m and n are relatively prime positive integers. Find m+n").
    """
    index = EvalIndex.build(eval_sets, n)
    kept, removed = [], []
    for item in items:
        hit = index.match(words(item.problem.question), min_overlap)
        if hit is None:
            kept.append(item)
        else:
            removed.append(_removal(item, CONTAMINATION, *hit))
    return kept, removed


def dedup_exact(items: Sequence[Item]) -> tuple[list[Item], list[Removal]]:
    """Drop items whose normalised question equals an earlier one's."""
    first: dict[str, Item] = {}
    kept, removed = [], []
    for item in items:
        key = exact_key(item.problem.question)
        if key in first:
            removed.append(_removal(item, EXACT, first[key].problem.uid, "same normalised text"))
        else:
            first[key] = item
            kept.append(item)
    return kept, removed


def dedup_near(
    items: Sequence[Item],
    *,
    threshold: float = 0.8,
    shingle_words: int = 3,
    num_perm: int = 128,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Item], list[Removal]]:
    """Drop items whose MinHash Jaccard estimate with a kept item is >= threshold."""
    try:
        from datasketch import MinHash, MinHashLSH  # the optional extra or1[dedup]
    except ImportError:
        raise ConfigError(
            "data.dedup.near (near-duplicate removal) needs the datasketch package.",
            hint="pip install 'or1[dedup]', or data.dedup.near=false for exact dedup only.",
        ) from None

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    signatures = MinHash.bulk(
        [_shingles(item.problem.question, shingle_words) for item in items],
        num_perm=num_perm,
        seed=MINHASH_SEED,
    )
    kept, removed = [], []
    for i, (item, signature) in enumerate(zip(items, signatures, strict=True)):
        best, score = None, 0.0
        for key in lsh.query(signature):
            similarity = signature.jaccard(signatures[key])
            if similarity >= threshold and similarity > score:
                best, score = key, similarity
        if best is None:
            lsh.insert(i, signature)
            kept.append(item)
        else:
            uid = items[best].problem.uid
            removed.append(_removal(item, NEAR, uid, f"estimated Jaccard {score:.2f}"))
        if progress is not None:
            progress(1)
    return kept, removed


def _shingles(text: str, k: int) -> list[bytes]:
    tokens = words(text)
    if len(tokens) <= k:
        return [" ".join(tokens).encode()]
    return [" ".join(tokens[i : i + k]).encode() for i in range(len(tokens) - k + 1)]


def _removal(item: Item, reason: str, match: str, detail: str) -> Removal:
    return Removal(item.problem.uid, item.source, item.row, reason, match, detail)


# --------------------------------------------------------------------------- pipeline


def curate(
    items: Iterable[Item],
    eval_sets: dict[str, Sequence[Problem]],
    cfg: DedupConfig,
    *,
    progress: Callable[[int], None] | None = None,
) -> CurationResult:
    """Decontaminate (if eval sets are given), then exact and near dedup, per ``cfg``.

    Example:
        >>> result = curate(items, {"aime24": aime24}, DedupConfig())  # doctest: +SKIP
        >>> result.counts()
        {'contamination': 1, 'exact-duplicate': 3, 'near-duplicate': 2}
    """
    kept = list(items)
    removed: list[Removal] = []
    if cfg.decontaminate and eval_sets:
        kept, out = decontaminate(kept, eval_sets, n=cfg.ngram, min_overlap=cfg.ngram_overlap)
        removed += out
    if cfg.exact:
        kept, out = dedup_exact(kept)
        removed += out
    if cfg.near and kept:
        kept, out = dedup_near(
            kept,
            threshold=cfg.near_threshold,
            shingle_words=cfg.shingle_words,
            num_perm=cfg.num_perm,
            progress=progress,
        )
        removed += out
    settings = {**cfg.model_dump(), "eval_sets": {k: len(v) for k, v in eval_sets.items()}}
    return CurationResult(kept=kept, removed=removed, settings=settings)
