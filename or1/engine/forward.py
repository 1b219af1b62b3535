"""The one forward pass of the trainable policy: response-token log-probs and entropies.

``ResponseScorer`` wraps a transformers causal LM and returns ``TokenScores`` for a
micro-batch laid out as [left-padded prompt | right-padded response] (``RolloutBatch``):
the decoder runs to its final hidden states, and the LM head, log-probs and entropies
are computed in chunks of tokens from them (``or1.engine.lm_head``), only on the
positions that predict real response tokens. No [n, T, V] logits tensor exists.

The local policy and every FSDP2 rank run this same module (on FSDP2 it is the root
unit; an untied head is a unit of its own, gathered while it scores). Two ways through the
decoder give the same scores (tests check it):

- full: one pass over [prompt | response] (response token j at column P + j is
  predicted by column P + j - 1);
- shared prompt: each group's prompt runs once with its K/V cached, every response of
  the group attends to it (autograd flows through the shared K/V); used locally when the
  rows of each group share one prompt and activation checkpointing is off.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from or1.engine.lm_head import DEFAULT_CHUNK_TOKENS, head_scores
from or1.errors import ConfigError
from or1.types import TokenScores

# Config attributes of heads that are not one linear map (the chunked head computes
# only h W^T + b): the plain path (train.logits_chunk_tokens=null) cannot help either.
UNSUPPORTED_HEADS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")


def checkpointing(model: PreTrainedModel) -> bool:
    """Activation checkpointing on (it drops the KV cache the shared-prompt path needs)."""
    name = "is_activation_checkpointing"  # transformers >= 5.2x; older: is_gradient_...
    if not hasattr(type(model), name):
        name = "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


class ResponseScorer(nn.Module):
    """Scores the response tokens of a micro-batch under ``model``.

    Args:
        model: a transformers causal LM whose head is one linear map (Qwen2, Llama, ...).
        chunk_tokens: tokens per LM-head chunk; None materializes [N, V] logits (the
            reference path, ``train.logits_chunk_tokens=null``).
    """

    def __init__(
        self, model: PreTrainedModel, *, chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS
    ) -> None:
        super().__init__()
        for name in UNSUPPORTED_HEADS:
            if getattr(model.config, name, None):
                raise ConfigError(
                    f"model config sets {name}: or1 scores tokens with a plain linear LM head.",
                    hint="use a Qwen2/Llama-style causal LM (R1-Distill models are).",
                )
        self.model = model
        self.chunk_tokens = chunk_tokens
        params = inspect.signature(model.base_model.forward).parameters
        # transformers renamed `past_key_values` to `cache` in 5.2x; accept both.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        *,
        prompt_length: int,
        temperature: float = 1.0,
        groups: tuple[Tensor, Tensor] | None = None,
    ) -> TokenScores:
        """Log-probs and entropies of the response columns.

        Args:
            input_ids, attention_mask: [n, P + T] (on the model's device).
            prompt_length: P.
            temperature: the scores are those of the logits divided by it.
            groups: (a row of each group [B], each row's group [n]) to run each group's
                prompt once (see ``or1.engine.policy.shared_prompts``); None: full pass.

        Returns:
            ``TokenScores`` with logp and entropy [n, T] (0 on response padding).
        """
        p = prompt_length
        if groups is not None and not checkpointing(self.model):
            hidden = self._shared_prompt_hidden(input_ids, attention_mask, p, *groups)
        else:
            hidden = self._full_hidden(input_ids, attention_mask, p)
        real = attention_mask[:, p:].bool()  # [n, T] real response tokens
        logp, entropy = head_scores(
            self.model.get_output_embeddings(),
            hidden[real],
            input_ids[:, p:][real],
            temperature=temperature,
            chunk_tokens=self.chunk_tokens,
        )
        zeros = torch.zeros(real.shape, dtype=logp.dtype, device=logp.device)
        return TokenScores(zeros.masked_scatter(real, logp), zeros.masked_scatter(real, entropy))

    def _full_hidden(self, ids: Tensor, mask: Tensor, p: int) -> Tensor:
        """[n, T, H] final hidden states of the columns that predict the response."""
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions)
        return out.last_hidden_state[:, p - 1 : -1]

    def _shared_prompt_hidden(
        self, ids: Tensor, mask: Tensor, p: int, first: Tensor, group: Tensor
    ) -> Tensor:
        """The same hidden states, with each group's prompt run once.

        Args:
            first: [B] a row of each group; group: [n] the group (index into first) of each row.
        """
        base = self.model.base_model
        t = ids.shape[1] - p
        first, group = first.to(ids.device), group.to(ids.device)
        prompt_mask = mask[first, :p]
        prompt_pos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
        out = base(
            input_ids=ids[first, :p],
            attention_mask=prompt_mask,
            position_ids=prompt_pos,
            use_cache=True,
        )
        head = out.last_hidden_state[:, -1:][group]  # [n, 1, H]: predicts response token 0
        if t == 1:
            return head
        cache = getattr(out, "cache", None) or out.past_key_values
        cache.batch_select_indices(group)  # differentiable: each row reads its group's K/V
        # Response token j sits at position len(prompt) + j, as in the full forward.
        steps = torch.arange(1, t, device=ids.device)
        rest = base(
            input_ids=ids[:, p : p + t - 1],
            attention_mask=torch.cat([prompt_mask[group], mask[:, p : p + t - 1]], dim=1),
            position_ids=prompt_pos[group, -1:] + steps,
            **{self._cache_kw: cache},
            use_cache=True,
        ).last_hidden_state
        return torch.cat([head, rest], dim=1)
