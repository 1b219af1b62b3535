"""ResponseScorer: the policy's one forward, equal to log_softmax of the model's own logits."""

from __future__ import annotations

import pytest
import torch

from or1.engine.forward import ResponseScorer
from or1.engine.micro import shared_prompts
from or1.errors import ConfigError


def _reference(model, batch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log p and entropy of the response tokens from the model's full [n, P+T, V] logits."""
    mask = batch.attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=positions).logits
    p = batch.prompt_length
    z = logits[:, p - 1 : -1].float() / temperature
    logp_all = torch.log_softmax(z, -1)
    logp = logp_all.gather(-1, batch.input_ids[:, p:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    real = mask[:, p:].float()
    return logp * real, entropy * real


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk", [None, 3, 1024])
def test_scores_equal_the_models_logits_on_both_paths(
    small_model, grouped_batch, temperature, chunk
) -> None:
    model = small_model()
    batch = grouped_batch(model.config.vocab_size)
    ref_logp, ref_ent = _reference(model, batch, temperature)
    scorer = ResponseScorer(model, chunk_tokens=chunk)
    for groups in (None, shared_prompts(batch)):
        scores = scorer(
            batch.input_ids,
            batch.attention_mask,
            prompt_length=batch.prompt_length,
            temperature=temperature,
            groups=groups,
        )
        assert torch.allclose(scores.logp, ref_logp, atol=1e-5)
        assert torch.allclose(scores.entropy, ref_ent, atol=1e-5)


def test_gradients_equal_the_models_logits_path(small_model, ragged_batch) -> None:
    """An update-like loss (log-probs and an entropy bonus): same parameter gradients."""
    grads = []
    for chunk in ("reference", None, 4):
        model = small_model(layers=1)
        batch = ragged_batch(model.config.vocab_size)
        if chunk == "reference":
            logp, ent = _reference(model, batch, 0.9)
        else:
            s = ResponseScorer(model, chunk_tokens=chunk)(
                batch.input_ids, batch.attention_mask, prompt_length=batch.prompt_length,
                temperature=0.9,
            )  # fmt: skip
            logp, ent = s.logp, s.entropy
        loss = -(batch.advantages[:, None] * logp * batch.response_mask).sum() - 0.1 * ent.sum()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[1], grads[0], atol=1e-5)
    assert torch.allclose(grads[2], grads[0], atol=1e-5)


def test_a_head_that_is_not_one_linear_map_is_refused(small_model) -> None:
    model = small_model()
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(ConfigError, match="final_logit_softcapping"):
        ResponseScorer(model)
