"""Running a solution against its tests in the sandbox, and deciding each test on the host.

- stdin/stdout tests: one sandboxed process per test (the program as `__main__`, the
  test's input on stdin); the host compares what it printed. Exit status 0 (also via
  `sys.exit(0)`, which ends a program normally) is required.
- call-based and assert tests: a judge + candidate pair per run (see _harness.py). The
  candidate never sees expected values; the judge runs the calls or the dataset's
  asserts on values it rebuilt itself and sends one record per test. Call results are
  compared here, type-aware (`values_match`). When a run ends early (a timeout, a gone
  candidate), the test it was on fails and, if fractional, a fresh pair goes on with the
  next test.
A test passes only with an "ok" record (and the right value/output) for that test.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field

from or1.rewards import _wire, sandbox
from or1.rewards.code_tests import TestSpec, outputs_match, values_match
from or1.rewards.sandbox_host import Proc

STARTUP_S = 1.0  # wall-time allowance per sandbox run on top of its tests
PER_TEST_SLACK_S = 0.5  # wall-time allowance per test on top of its timeout
MIN_RUN_S = 0.2  # do not start a run with less budget than this
OUTPUT_FILE_MB = 16  # largest file a test may write (RLIMIT_FSIZE)
STDOUT_BYTES = 16 * 2**20  # largest stdout of one stdin/stdout test
HACK = "hack attempt: "
_REASONS = {"AssertionError": "test failed", "BadTestCode": "bad test code"}


@dataclass
class Outcome:
    """Per test: passed, and the reason it failed ("" if passed or not run)."""

    passed: list[bool]
    reasons: list[str]
    hack: bool = False

    def fail(self, i: int, reason: str) -> None:
        if 0 <= i < len(self.passed):
            self.passed[i] = False
            self.reasons[i] = self.reasons[i] or reason
        self.hack = self.hack or reason.startswith(HACK)


def run_tests(
    spec: TestSpec, code: str, *, timeout_s: float, total_s: float, memory_mb: int, fractional: bool
) -> Outcome:
    """Run every test (stopping at the first failure unless fractional) within total_s."""
    n = len(spec.inputs)
    out = Outcome([False] * n, [""] * n)
    deadline = time.monotonic() + total_s
    limits = dict(timeout_s=timeout_s, memory_mb=memory_mb)
    if spec.mode == "stdio":
        _run_stdio(spec, code, out, deadline, fractional=fractional, **limits)
    else:
        start = 0
        while start < n and deadline - time.monotonic() >= MIN_RUN_S:
            start = _run_pair(spec, code, start, out, deadline, **limits)
            if start < 0 or (not fractional and not all(out.passed[:start])):
                break
    for i in range(n):
        if not out.passed[i] and not out.reasons[i]:
            out.reasons[i] = "timeout"  # never ran: the global cap ended the response
    return out


def _sandbox_limits(wall_s: float, memory_mb: int, stdout_bytes: int) -> sandbox.Limits:
    return sandbox.Limits(
        wall_s=wall_s,
        cpu_s=wall_s + 1.0,
        memory_mb=memory_mb,
        file_size_mb=OUTPUT_FILE_MB,
        stdout_bytes=stdout_bytes,
    )


def _run_stdio(
    spec: TestSpec,
    code: str,
    out: Outcome,
    deadline: float,
    *,
    timeout_s: float,
    memory_mb: int,
    fractional: bool,
) -> None:
    source = spec.prefix + "\n" + code
    for i, stdin in enumerate(spec.inputs):
        budget = deadline - time.monotonic()
        if budget < MIN_RUN_S:
            break
        limits = _sandbox_limits(min(budget, timeout_s + PER_TEST_SLACK_S), memory_mb, STDOUT_BYTES)
        res = sandbox.run_python(
            source, stdin=stdin.encode("utf-8", "surrogatepass"), limits=limits
        )
        out.passed[i] = res.ok and outputs_match(
            res.stdout.decode("utf-8", "replace"), spec.expected[i]
        )
        if not out.passed[i]:
            out.fail(i, _stdio_reason(res))
            if not fractional:
                break


def _stdio_reason(res: sandbox.SandboxResult) -> str:
    if res.status == "timeout" or res.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if res.status == "output_limit":
        return "output limit"
    return "wrong output" if res.ok else "runtime error"


@dataclass
class _Records:
    """The judge's records of one run (it is trusted; its records are still checked)."""

    spec: TestSpec
    start: int
    seen: dict[int, dict] = field(default_factory=dict)
    last: int = -1
    exit_after: int | None = None
    load_failed: dict | None = None

    def on_line(self, line: bytes) -> bool:
        """Take one record. Never stops the run: after a record with "exit" the judge
        exits by itself, and the candidate's own exit status must be seen (a kill would
        hide an os._exit)."""
        try:
            rec = json.loads(line)
        except ValueError:
            return True
        i = rec.get("i") if isinstance(rec, dict) else None
        if i == -1:
            self.load_failed = rec
            return True
        if not isinstance(i, int) or not max(self.last, self.start - 1) < i < len(self.spec.inputs):
            return True
        self.seen[i], self.last = rec, i
        if rec.get("exit"):
            self.exit_after = i
        return True


def _run_pair(
    spec: TestSpec,
    code: str,
    start: int,
    out: Outcome,
    deadline: float,
    *,
    timeout_s: float,
    memory_mb: int,
) -> int:
    """One judge + candidate run from test `start`; returns where to resume (-1: stop)."""
    n = len(spec.inputs)
    wall = min(
        deadline - time.monotonic(), (n - start) * (timeout_s + PER_TEST_SLACK_S) + STARTUP_S
    )
    limits = _sandbox_limits(wall, memory_mb, 64 * 2**20)
    judge_job = {
        "mode": spec.mode,
        "tests": spec.inputs[start:],
        "offset": start,
        "timeout_s": timeout_s,
        "fn_name": spec.fn_name,
        "entry": spec.entry,
        "prefix": spec.prefix,
        "helpers": spec.suffix,
    }
    procs = [
        Proc("judge", judge_job, sandbox.proc_limits(limits), uid=0),
        Proc("candidate", {"code": spec.prefix + "\n" + code}, sandbox.proc_limits(limits), uid=1),
    ]
    records = _Records(spec, start)
    res = sandbox.run_procs(procs, limits=limits, on_line=records.on_line)
    gone = _gone_reason(res.exits[1] if len(res.exits) > 1 else (None, None))
    if records.load_failed is not None:
        reason = _record_reason(records.load_failed, gone)
        for i in range(start, n):
            out.fail(i, reason)
        return -1
    for i, rec in sorted(records.seen.items()):
        _decide(spec, i, rec, out, gone)
    if records.exit_after is not None:
        return records.exit_after + 1
    if records.last < n - 1:  # the run ended during the next test (killed, wall limit)
        out.fail(records.last + 1, "timeout" if res.status == "timeout" else "runtime error")
        return records.last + 2
    return n


def _decide(spec: TestSpec, i: int, rec: dict, out: Outcome, gone: str) -> None:
    if rec.get("status") != "ok" or rec.get("hack"):
        out.fail(i, _record_reason(rec, gone))
        return
    if spec.mode == "assert":
        out.passed[i] = True
        return
    try:
        value = _wire.decode(rec["v"])  # plain data only: no class reaches the host
    except (_wire.WireError, KeyError, TypeError):
        out.fail(i, "runtime error")
        return
    out.passed[i] = any(values_match(value, want) for want in spec.expected[i])
    if not out.passed[i]:
        out.fail(i, "wrong output")


def _gone_reason(exit_status: tuple[int | None, int | None]) -> str:
    """Why the candidate went away: it exited by itself (a hack attempt), or was killed."""
    code, sig = exit_status
    if code is not None:
        return HACK + "exit before tests finished"
    return "timeout" if sig in (signal.SIGXCPU, signal.SIGKILL) else "runtime error"


def _record_reason(rec: dict, gone: str) -> str:
    if rec.get("hack"):
        return HACK + str(rec["hack"])
    if rec.get("status") == "timeout":
        return "timeout"
    error = str(rec.get("error", ""))
    if error == "CandidateGone":
        return gone
    return _REASONS.get(error.split(":")[0], "runtime error")
