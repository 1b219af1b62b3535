"""The reward seam: rewards that see the problem, named by import path in the config
(a judge defined in a test module), the code limits from ``rewards.code``, and the
metrics by ability and by source on a mixed math + code batch."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from or1.config import RewardsConfig, load_config
from or1.data.problem import Problem
from or1.errors import ConfigError, RewardError
from or1.rewards import (
    RELEASED_CODE_LIMITS,
    CodeLimits,
    RewardSet,
    rewards_from_config,
    sandbox,
    score_problems,
    score_rollouts,
    shutdown_pool,
)
from or1.rewards.scoring import (
    HACK_METRIC,
    REASON_METRIC,
    grouped_means,
    reason_counts,
    require_sandbox,
    source_key,
    step_breakdown,
    uses_sandbox,
)
from or1.rewards.verdict import Verdict

CODE_TESTS = json.dumps({"inputs": ["2\n", "5\n"], "outputs": ["4\n", "25\n"]})
GOOD_CODE = "```python\nn = int(input())\nprint(n * n)\n```"
BAD_CODE = "```python\nprint(4)\n```"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def helpers(monkeypatch):
    """tests/rewards/reward_helpers.py importable by name, as a user's package would be."""
    shutdown_pool()  # pool workers must see the extended sys.path
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import reward_helpers

    reward_helpers.CALLS.clear()
    yield reward_helpers
    shutdown_pool()


def test_a_reward_by_import_path_sees_the_question(helpers) -> None:
    rewards = rewards_from_config(RewardsConfig(by_ability={"MATH": "reward_helpers:judge"}))
    assert rewards.fns["math"] is helpers.judge and "code" in rewards.fns
    # Same ground truth and response, different questions: a judge tells them apart, so
    # dedup must not merge them (it keys on the problem's uid too).
    apples = Problem("p0", user("How many apples"), "3")
    pears = Problem("p1", user("How many pears"), "3")
    verdicts = score_rollouts(
        [apples, pears], [0, 1, 0], ["3 apples", "3 apples", "pears"], rewards=rewards
    )
    assert verdicts == [
        Verdict(1.0, "judged correct"),
        Verdict(0.0, "judged wrong"),
        Verdict(0.0, "judged wrong"),
    ]
    # The process pool pickles the function by reference: the worker imports the module.
    pooled = score_rollouts(
        [apples, pears], [0, 1], ["3 apples", "3 apples"], rewards=rewards, workers=1
    )
    assert [v.reward for v in pooled] == [1.0, 0.0]


def test_bad_import_paths_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"rewards\.by_ability\.math.*not an import path"):
        load_config("tiny-arith", ["rewards.by_ability.math=judge"])
    cfg = load_config("tiny-arith", ["rewards.by_ability.math=no_such_pkg.judge:score"])
    with pytest.raises(ConfigError, match=r"rewards\.by_ability\.math: cannot import 'no_such_pkg"):
        rewards_from_config(cfg.rewards)
    cfg = load_config("tiny-arith", ["rewards.by_ability.math=or1.rewards.math:NO_SUCH"])
    with pytest.raises(ConfigError, match="has no 'NO_SUCH'"):
        rewards_from_config(cfg.rewards)
    cfg = load_config("tiny-arith", ["rewards.by_ability.math=or1.rewards.math:THINK_END"])
    with pytest.raises(ConfigError, match="is a str, not a function"):
        rewards_from_config(cfg.rewards)


def test_code_limits_come_from_the_config() -> None:
    slow = Problem(
        "c", user("square n"), json.dumps({"inputs": ["2\n"], "outputs": ["4\n"]}), ability="code"
    )
    sleeper = "```python\nimport time\ntime.sleep(1.5)\nprint(4)\n```"
    default = rewards_from_config(RewardsConfig())
    tight = rewards_from_config(RewardsConfig(code={"timeout_s": 0.5, "total_timeout_s": 2}))
    assert default.fns["code"].keywords["limits"] == CodeLimits()  # type: ignore[attr-defined]
    assert score_problems([(slow, sleeper)], rewards=default)[0].reward == 1.0
    assert score_problems([(slow, sleeper)], rewards=tight)[0] == Verdict(0.0, "timeout")
    released = rewards_from_config(RewardsConfig(code={"limits": "released", "memory_mb": 512}))
    limits = released.fns["code"].keywords["limits"]  # type: ignore[attr-defined]
    assert limits == dataclasses.replace(RELEASED_CODE_LIMITS, memory_mb=512)
    assert released.timeouts["code"] >= 300  # the pool leaves the released 300 s cap
    half = rewards_from_config(RewardsConfig(code={"fractional": True}))
    two = Problem("c2", user("square"), CODE_TESTS, ability="code")
    assert score_problems([(two, BAD_CODE)], rewards=half)[0].reward == 0.5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random HF model directory (tokenizer with a chat template)."""
    import torch

    from or1.build.models import build_tiny_model, build_tiny_tokenizer
    from or1.config import TinyModelConfig

    torch.manual_seed(0)
    tok = build_tiny_tokenizer(["Say something about 0 1 2 3 4 5 6 7 ok fine"] * 10)
    dims = TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64)
    path = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(dims, tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_a_new_ability_from_the_config_loads_and_trains(
    helpers, small_config, model_dir: Path, tmp_path: Path
) -> None:
    """A user's reward for a new ability: data rows of that ability (any case) load, and
    the trainer scores them with it, in this process, shown the whole problem."""
    from or1.data.sources import write_parquet
    from or1.trainer import Trainer

    rows = [
        {
            "data_source": "my-judge-set",
            "prompt": user(f"Say something about {i}"),
            "ability": "Judge" if i % 2 else "JUDGE",
            "reward_model": {"ground_truth": str(i), "style": "model"},
        }
        for i in range(8)
    ]
    data = write_parquet(rows, tmp_path / "judge.parquet")
    cfg = small_config.model_copy(deep=True)
    cfg.rewards = RewardsConfig(by_ability={"judge": "reward_helpers:recording_reward"})
    cfg.data.train, cfg.data.test, cfg.model.path = str(data), None, str(model_dir)
    trainer = Trainer(cfg, tmp_path / "run", show_progress=False)
    assert {p.ability for p in trainer.train_problems} == {"judge"}
    trainer.step = 1
    metrics = trainer.train_step(cfg.stages[0])
    n = cfg.stages[0].batch_size * cfg.stages[0].group_size
    assert len(helpers.CALLS) <= n and helpers.CALLS  # deduplicated, never more
    assert all(q.startswith("Say something about") for q, _ in helpers.CALLS)
    assert metrics["accuracy/judge"] == metrics["accuracy"]
    assert metrics["accuracy/src/my-judge-set"] == metrics["accuracy"]
    assert metrics[HACK_METRIC] == 0.0


def test_the_breakdown_of_a_mixed_math_and_code_batch(helpers) -> None:
    """Two math problems (two sources) and one code problem, two responses each; rewards
    from the real reward path (Math-Verify, the sandbox)."""
    gsm = Problem("m0", user("1+1?"), "2", ability="math", data_source="openai/gsm8k")
    aime = Problem("m1", user("2+2?"), '["4", "four"]', ability="math", data_source="aime24")
    code = Problem("c0", user("square n"), CODE_TESTS, ability="code", data_source="taco")
    problems, group_ids = [gsm, aime, code], [0, 0, 1, 1, 2, 2]
    responses = ["\\boxed{2}", "\\boxed{3}", "\\boxed{4}", "\\boxed{4}", GOOD_CODE, BAD_CODE]
    verdicts = score_rollouts(problems, group_ids, responses)
    rewards = [v.reward for v in verdicts]
    assert rewards == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert [v.reason for v in verdicts] == ["", "wrong answer", "", "", "", "wrong output"]
    lengths = [10.0, 20.0, 30.0, 40.0, 50.0, 70.0]
    truncated = [False, True, False, False, False, True]
    answered = [problems[g] for g in group_ids]
    metrics = step_breakdown(answered, verdicts, rewards, lengths, truncated)
    assert metrics["accuracy/math"] == 0.75 and metrics["accuracy/code"] == 0.5
    assert metrics["reward_mean/math"] == 0.75 and metrics["reward_mean/code"] == 0.5
    assert metrics["accuracy/src/openai_gsm8k"] == 0.5 and metrics["accuracy/src/aime24"] == 1.0
    assert metrics["accuracy/src/taco"] == 0.5
    assert metrics["response_length_mean/math"] == 25.0
    assert metrics["response_length_mean/code"] == 60.0
    assert metrics["response_length_mean/src/aime24"] == 35.0
    assert metrics["truncation_ratio/math"] == 0.25 and metrics["truncation_ratio/code"] == 0.5
    assert metrics["truncation_ratio/src/openai_gsm8k"] == 0.5
    assert metrics[HACK_METRIC] == 0.0
    flagged = [Verdict(0.0, "exit", hack=True), *verdicts[1:]]
    assert step_breakdown(answered, flagged, rewards, lengths, truncated)[HACK_METRIC] == 1.0
    grouped = [k for k in metrics if "/" in k and not k.startswith(REASON_METRIC)]
    assert len(grouped) == 4 * (2 + 3)  # 4 metrics x 5 groups
    # one count per reason (passes have none): "wrong answer", "wrong output"
    reasons = {k: v for k, v in metrics.items() if k.startswith(REASON_METRIC + "/")}
    assert reasons == {"reward_reasons/wrong_answer": 1.0, "reward_reasons/wrong_output": 1.0}


def test_hack_flags_of_a_reward_reach_the_metric(helpers) -> None:
    rewards = RewardSet({"code": helpers.hacking_reward})
    problem = Problem("c", user("x"), CODE_TESTS, ability="code")
    responses = ["```python\nexit(0)\n```", "```python\nprint(4)\n```", "exit(1)"]
    verdicts = score_rollouts([problem], [0, 0, 0], responses, rewards=rewards)
    metrics = step_breakdown(
        [problem] * 3, verdicts, [v.reward for v in verdicts], [1] * 3, [False] * 3
    )
    assert metrics[HACK_METRIC] == 2.0 and metrics["accuracy/code"] == pytest.approx(1 / 3)


def test_verdicts_from_the_pool_keep_reason_and_hack_flag(helpers) -> None:
    """score_rollouts with workers >= 1: the same Verdicts as in this process (reason and
    hack flag of the reward function, the code reward's own reasons), and the step's
    reason counts from them."""
    rewards = RewardSet({"code": helpers.hacking_reward, "judge": helpers.judge})
    hacky = Problem("c", user("x"), CODE_TESTS, ability="code")
    judged = Problem("j", user("say owl"), "7", ability="judge")
    real = Problem("r", user("square n"), CODE_TESTS, ability="code")
    responses = ["```python\nexit(0)\n```", "print(4)", "owl 7", "7"]
    here = score_rollouts([hacky, judged], [0, 0, 1, 1], responses, rewards=rewards)
    pooled = score_rollouts([hacky, judged], [0, 0, 1, 1], responses, rewards=rewards, workers=2)
    assert pooled == here
    assert [(v.reason, v.hack) for v in pooled] == [
        ("hack", True),
        ("", False),
        ("judged correct", False),
        ("judged wrong", False),
    ]
    code = score_rollouts([real], [0, 0, 0], [GOOD_CODE, BAD_CODE, "no code"], workers=2)
    assert [(v.reward, v.reason) for v in code] == [
        (1.0, ""),
        (0.0, "wrong output"),
        (0.0, "no code block"),
    ]
    assert reason_counts(pooled + code) == {
        "reward_reasons/hack": 1.0,
        "reward_reasons/judged_correct": 1.0,
        "reward_reasons/judged_wrong": 1.0,
        "reward_reasons/no_code_block": 1.0,
        "reward_reasons/wrong_output": 1.0,
    }


def test_a_pool_timeout_and_a_crash_are_verdicts_with_reasons(helpers) -> None:
    rewards = RewardSet(
        {
            "sleepy": helpers.sleepy_reward,
            "crash": helpers.crashing_reward,
            "raise": helpers.raising_reward,
        },
        {"sleepy": 1.0},
    )
    problems = [
        Problem("s", [], "30", ability="sleepy"),
        Problem("c", [], "", ability="crash"),
        Problem("e", [], "", ability="raise"),
    ]
    verdicts = score_rollouts(problems, [0, 1, 2], ["a", "b", "c"], rewards=rewards, workers=1)
    assert [(v.reward, v.reason) for v in verdicts] == [
        (0.0, "timeout"),
        (0.0, "reward error: worker died"),
        (0.0, "reward error: ZeroDivisionError"),
    ]


def test_source_keys_and_means() -> None:
    assert source_key("openai/gsm8k") == "openai_gsm8k"
    assert source_key("train-math-numinamath1.5_olympiads") == "train-math-numinamath1.5_olympiads"
    assert source_key("") == "unknown" and source_key("//") == "unknown"
    ps = [Problem("a", [], "1", "math", "s"), Problem("b", [], "1", "math", "t")]
    assert grouped_means(ps, {"x": [1.0, 3.0]}) == {"x/math": 2.0, "x/src/s": 1.0, "x/src/t": 3.0}


# ---- the sandbox at the start of a run ------------------------------------------------
CODE_PROBLEM = Problem("c0", user("square n"), CODE_TESTS, "code", "taco")
MATH_PROBLEM = Problem("m0", user("1+1?"), "2", "math", "gsm8k")


def _no_backend_here(monkeypatch) -> None:
    """A machine where no backend isolates programs: bubblewrap (the one allowed) missing."""
    monkeypatch.setattr(sandbox, "_BACKENDS", {})
    monkeypatch.delenv(sandbox.INSECURE_ENV, raising=False)
    monkeypatch.setenv("OR1_SANDBOX_BACKEND", "bwrap")
    monkeypatch.setattr(shutil, "which", lambda name: None)


def test_a_run_with_code_problems_probes_the_sandbox_at_start(monkeypatch) -> None:
    rewards = rewards_from_config(RewardsConfig())
    assert uses_sandbox(rewards.fns["code"]) and not uses_sandbox(rewards.fns["math"])
    released = rewards_from_config(RewardsConfig(answer_after="first-think")).fns
    assert uses_sandbox(released["code"]) and not uses_sandbox(released["math"])
    # The automatic choice, as a run makes it: not a backend the test session forced
    # (OR1_SANDBOX_BACKEND=rlimit with the weak mode allowed gives the weak one, rightly).
    monkeypatch.delenv("OR1_SANDBOX_BACKEND", raising=False)
    monkeypatch.delenv(sandbox.INSECURE_ENV, raising=False)
    backend = require_sandbox(rewards, [MATH_PROBLEM, CODE_PROBLEM])
    assert backend is not None and backend.isolated and backend.name in sandbox.STRONG
    _no_backend_here(monkeypatch)
    with pytest.raises(RewardError) as err:
        require_sandbox(rewards, [MATH_PROBLEM, CODE_PROBLEM])
    message = str(err.value)
    assert message.startswith("this run has code problems")
    assert "bwrap: bwrap not found" in message and "refuse to run" in message
    assert "Hint:" in message and "OR1_SANDBOX_INSECURE=1" in message


def test_no_code_problems_or_a_custom_code_reward_need_no_sandbox(monkeypatch, helpers) -> None:
    _no_backend_here(monkeypatch)  # would raise if probed
    rewards = rewards_from_config(RewardsConfig())
    assert require_sandbox(rewards, [MATH_PROBLEM]) is None
    custom = rewards_from_config(RewardsConfig(by_ability={"code": "reward_helpers:judge"}))
    assert require_sandbox(custom, [MATH_PROBLEM, CODE_PROBLEM]) is None
