"""The memory budget of a run per GPU, from the model's config.json alone (``or1 plan``).

No weights are read: the parameter counts come from an instance of the architecture on
PyTorch's ``meta`` device (exact for any model transformers knows), the shapes from
config.json. The plan is for the *longest stage* (or ``--stage N``): the longest
sequences are the ones that run out of memory.

Letters (bytes per element in parentheses):
    P   parameters; P_layer those of one decoder layer, P_root the rest (embeddings,
        final norm, untied LM head): FSDP2 shards each decoder layer, an untied model's
        embeddings and LM head (P_out: the larger), and then the root
    L, h, f, V   decoder layers, hidden size, MLP size, vocabulary size
    kv  key/value width of a layer = num_key_value_heads x head_dim
    W   FSDP ranks = distributed.workers with distributed.backend=ray, else 1
    m   master bytes: model.master_dtype (float32: 4)
    c   compute bytes: model.dtype (auto = bfloat16 on a GPU: 2)
    Pl, T   rollout.max_prompt_length and the stage's max_response_length
    S   tokens of one micro-batch on one rank, all rows at full length: rows x (Pl + T),
        rows = min(train.micro_batch_size, mini-batch rows / W), and at most
        train.micro_batch_tokens / (Pl + T) rows when that budget is set
    R   response tokens of that micro-batch (the LM head runs on them only): rows x T
    K   train.logits_chunk_tokens (None: the LM head is not chunked)
    G   --gpu-memory in GiB; u = rollout.vllm.gpu_memory_utilization

Held for the whole run:
    master weights         P x m / W
    AdamW state            2 P x m / W  (exp_avg and exp_avg_sq in the master dtype)
    vLLM's share           u x G  (rollout.engine=vllm with rollout.vllm.sleep_level=0:
                           its weights and KV cache stay on the GPU through updates;
                           with sleep mode, the default, it is a rollout-time item)
    CUDA context           1 GiB for the policy process (context, NCCL, allocator slack)
During an update, on top:
    gradients              P x m / W  (sharded, master dtype; freed after the step)
    unsharded weights      W > 1: (P_root + 2 P_layer) x c: FSDP2 keeps the root unit
                           gathered from forward to backward, and holds the layer it
                           computes plus the one it prefetches. Untied embeddings and
                           head are units of their own (P_out the larger, P_rest the
                           root's remainder: the final norm): (P_rest + max(P_out +
                           P_layer, 2 P_layer)) x c. W = 1 with c < m: P x c
                           (autocast's compute copies); else 0
    unsharded gradients    W > 1: P_root x c (the root's, reduced at the end of backward)
                           + P_layer x (c + 4) (a layer's, and its fp32 reduce-scatter copy);
                           untied: P_rest x c + max(P_out, P_layer) x (c + 4)
    activations            checkpointing on: L x S x h x c (each layer's input) + S x a,
                           off: L x S x a, with a = 8h + c (5h + 3 kv + 4f) the saved
                           tensors of one layer per token (two RMSNorm inputs in fp32,
                           their outputs, q before/after RoPE, k before/after RoPE and
                           v, the attention output; the MLP's gate, up, SiLU(gate) and
                           product), + S x c (2f + 2h) gradients in flight in backward
    LM head, log-probs     chunked: min(K, R) x V x 8, two fp32 [K, V] buffers (a
                           chunk's logits and their softmax or gradient; each chunk is
                           recomputed in backward). Unchunked: R x V x (c + 12), the
                           head's output and three fp32 [R, V] tensors (logits, softmax,
                           their gradient): 2.4 MB per token at V = 151,936 in fp32,
                           as measured (CPU-FACTS)
During a rollout, on top (rollout.engine=hf):
    rollout weights        Ray: P x c (each rollout worker's copy); local: 0 (shared)
    KV cache               rows x (Pl + T) x L x 2 x kv x c, rows = rollout.max_num_seqs
                           rounded down to whole groups (at least one group)
    sampling               rows x V x (c + 16): the logits and four fp32 [rows, V]
                           (scaled logits, log-softmax, probabilities, their cumsum)
Inside vLLM's share (rollout.engine=vllm), with tp = rollout.vllm.tensor_parallel_size:
    weights                P x c / tp
    runtime                2 GiB (CUDA graphs, context) + B x c x (3f + 4h) (the peak
                           activations of one forward of B = 16,384 tokens, vLLM's
                           default batch on >= 70 GiB GPUs; 8,192 below) + max_num_seqs x
                           V x 8 (the sampler's fp32 logits and probabilities)
    KV cache               the rest; a sequence of Pl + T tokens (in 16-token blocks)
                           takes L x 2 x ceil(kv_heads / tp) x head_dim x c per token, so
                           the plan gives how many fit at once (all at full length: the
                           worst case; vLLM allocates blocks as sequences grow)

Peak per GPU = held + max(update, rollout). It fits when the peak is at most G and, with
vLLM, at least one full-length sequence fits in its KV cache. The passes that score old
or reference log-probs run without gradients and need less than the update. Estimates, not
measurements: the allocator's fragmentation and kernels' workspaces come on top (the
1 GiB above is a guess); leave a few GiB of headroom.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from or1.config import Config
from or1.errors import ConfigError
from or1.plan.shape import ModelShape

log = logging.getLogger("or1.plan")

GIB = 2**30
POLICY_RUNTIME_BYTES = 1 * GIB
VLLM_RUNTIME_BYTES = 2 * GIB
VLLM_BLOCK_TOKENS = 16
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Settings:
    """The settings the plan reads, flattened (see the module docstring's letters)."""

    workers: int  # W
    distributed: bool  # Ray backend: rollout workers hold their own weights
    master_bytes: int  # m
    compute_bytes: int  # c
    checkpointing: bool
    prompt_length: int  # Pl
    response_length: int  # T
    micro_rows: int  # rows of a micro-batch: S / (Pl + T)
    logits_chunk: int | None  # K
    engine: str
    group_size: int
    max_num_seqs: int
    gpu_utilization: float  # u
    tensor_parallel: int  # tp
    vllm_sleeps: bool  # rollout.vllm.sleep_level > 0: vLLM frees its share in updates
    stage: int
    sequences: int  # of the step: prompts x group

    @property
    def seq_tokens(self) -> int:
        return self.prompt_length + self.response_length

    @property
    def micro_tokens(self) -> int:  # S
        return self.micro_rows * self.seq_tokens

    @property
    def response_tokens(self) -> int:  # R
        return self.micro_rows * self.response_length


def _dtype_bytes(name: str, *, auto: str) -> int:
    return DTYPE_BYTES[auto if name == "auto" else name]


def settings_of(cfg: Config, *, stage: int | None = None, device: str = "cuda") -> Settings:
    """The plan's settings of ``cfg`` for ``stage`` (None: the longest)."""
    stages = cfg.stages
    if stage is None:
        stage = max(range(len(stages)), key=lambda i: stages[i].max_response_length)
    if not 0 <= stage < len(stages):
        raise ConfigError(f"--stage {stage}: the config has stages 0-{len(stages) - 1}.")
    st = stages[stage]
    ray = cfg.distributed.backend == "ray"
    workers = cfg.distributed.workers if ray else 1
    seq = cfg.rollout.max_prompt_length + st.max_response_length
    rows = min(cfg.train.micro_batch_size, math.ceil(st.mini_batch_size * st.group_size / workers))
    budget = cfg.train.micro_batch_tokens
    if budget:  # a row longer than the budget is the trainer's ConfigError; plan one row
        rows = min(rows, max(1, budget // seq))
    return Settings(
        workers=workers,
        distributed=ray,
        master_bytes=_dtype_bytes(cfg.model.master_dtype, auto="float32"),
        compute_bytes=_dtype_bytes(
            cfg.model.dtype, auto="bfloat16" if device == "cuda" else "float32"
        ),
        checkpointing=cfg.model.gradient_checkpointing,
        prompt_length=cfg.rollout.max_prompt_length,
        response_length=st.max_response_length,
        micro_rows=rows,
        logits_chunk=cfg.train.logits_chunk_tokens,
        engine=cfg.rollout.engine,
        group_size=st.group_size,
        max_num_seqs=cfg.rollout.max_num_seqs,
        gpu_utilization=cfg.rollout.vllm.gpu_memory_utilization,
        tensor_parallel=cfg.rollout.vllm.tensor_parallel_size,
        vllm_sleeps=cfg.rollout.vllm.sleep_level > 0,
        stage=stage,
        sequences=st.batch_size * st.group_size,
    )


@dataclass(frozen=True)
class Item:
    """One line of the budget: bytes per GPU, and when they are held."""

    name: str
    phase: str  # "held" | "update" | "rollout" | "vllm" (inside vLLM's share)
    bytes: int
    formula: str


@dataclass
class Plan:
    shape: ModelShape
    settings: Settings
    gpu_bytes: int
    items: list[Item] = field(default_factory=list)
    vllm_sequences: int | None = None  # full-length sequences vLLM's KV cache holds

    def total(self, phase: str) -> int:
        return sum(i.bytes for i in self.items if i.phase == phase)

    @property
    def peak(self) -> int:
        return self.total("held") + max(self.total("update"), self.total("rollout"))

    @property
    def fits(self) -> bool:
        vllm_ok = self.vllm_sequences is None or self.vllm_sequences >= 1
        return self.peak <= self.gpu_bytes and vllm_ok

    def item(self, name: str) -> Item:
        return next(i for i in self.items if i.name == name)


def _held(s: ModelShape, x: Settings, gpu_bytes: int) -> list[Item]:
    m, w = x.master_bytes, x.workers
    items = [
        Item("master weights", "held", s.params * m // w, "P x m / W"),
        Item("AdamW state", "held", 2 * s.params * m // w, "2 P x m / W"),
        Item("CUDA context", "held", POLICY_RUNTIME_BYTES, "1 GiB"),
    ]
    if x.engine == "vllm":
        share = int(x.gpu_utilization * gpu_bytes)
        if x.vllm_sleeps:  # freed before every update, taken back for the rollout
            items.append(Item("vLLM's share", "rollout", share, "u x G (asleep in updates)"))
        else:
            items.append(Item("vLLM's share", "held", share, "u x G"))
    return items


def layer_activation_bytes(s: ModelShape, c: int) -> int:
    """a: bytes one decoder layer saves for backward, per token (module docstring)."""
    return 8 * s.hidden + c * (5 * s.hidden + 3 * s.kv + 4 * s.intermediate)


def _update(s: ModelShape, x: Settings) -> list[Item]:
    m, c, w = x.master_bytes, x.compute_bytes, x.workers
    tokens = x.micro_tokens
    if w > 1:
        if s.split_params:  # untied: embeddings and head gathered only while they compute
            rest, out, layer = s.rest_params, s.split_params, s.layer_params
            gathered = (rest + max(out + layer, 2 * layer)) * c
            gathered_f = "(P_rest + max(P_out + P_layer, 2 P_layer)) x c"
            grad = rest * c + max(out, layer) * (c + 4)
            grad_f = "P_rest x c + max(P_out, P_layer) x (c + 4)"
        else:  # the root unit (embeddings, tied head) stays gathered through backward
            gathered = (s.root_params + 2 * s.layer_params) * c
            gathered_f = "(P_root + 2 P_layer) x c"
            grad = s.root_params * c + s.layer_params * (c + 4)
            grad_f = "P_root x c + P_layer x (c + 4)"
        weights = Item("unsharded weights", "update", gathered, gathered_f)
        grads = Item("unsharded gradients", "update", grad, grad_f)
    else:
        copies = s.params * c if c < m else 0
        weights = Item("compute copies", "update", copies, "P x c (autocast)" if copies else "-")
        grads = Item("unsharded gradients", "update", 0, "- (one rank)")
    a = layer_activation_bytes(s, c)
    in_flight = tokens * c * (2 * s.intermediate + 2 * s.hidden)
    if x.checkpointing:
        act = s.layers * tokens * s.hidden * c + tokens * a + in_flight
        act_formula = "L S h c + S a + S c (2f + 2h)"
    else:
        act = s.layers * tokens * a + in_flight
        act_formula = "L S a + S c (2f + 2h)"
    if x.logits_chunk:
        head = Item(
            "LM head, log-probs",
            "update",
            min(x.logits_chunk, x.response_tokens) * s.vocab * 8,
            "min(K, R) x V x 8",
        )
    else:
        head = Item(
            "LM head, log-probs",
            "update",
            x.response_tokens * s.vocab * (c + 12),
            "R x V x (c + 12)",
        )
    return [
        Item("gradients", "update", s.params * m // w, "P x m / W"),
        weights,
        grads,
        Item("activations", "update", act, act_formula),
        head,
    ]


def hf_rollout_rows(x: Settings) -> int:
    """Rows the hf engine decodes at once: whole groups within rollout.max_num_seqs."""
    return max(1, x.max_num_seqs // x.group_size) * x.group_size


def _rollout(s: ModelShape, x: Settings) -> list[Item]:
    if x.engine != "hf":
        return []
    c, rows = x.compute_bytes, hf_rollout_rows(x)
    kv = rows * x.seq_tokens * s.layers * 2 * s.kv * c
    weights = s.params * c if x.distributed else 0
    return [
        Item("rollout weights", "rollout", weights, "P x c" if weights else "- (shared)"),
        Item("KV cache (hf)", "rollout", kv, f"rows ({rows}) x (Pl + T) x 2 L kv c"),
        Item("sampling", "rollout", rows * s.vocab * (c + 16), "rows x V x (c + 16)"),
    ]


def _vllm(s: ModelShape, x: Settings, gpu_bytes: int) -> tuple[list[Item], int]:
    """vLLM's share split into weights, runtime and KV cache; full-length sequences."""
    c, tp = x.compute_bytes, x.tensor_parallel
    share = int(x.gpu_utilization * gpu_bytes)
    weights = s.params * c // tp
    batched = 16384 if gpu_bytes >= 70 * GIB else 8192
    runtime = (
        VLLM_RUNTIME_BYTES
        + batched * c * (3 * s.intermediate + 4 * s.hidden)
        + x.max_num_seqs * s.vocab * 8
    )
    kv = share - weights - runtime
    per_token = s.layers * 2 * math.ceil(s.kv_heads / tp) * s.head_dim * c
    blocks = math.ceil(x.seq_tokens / VLLM_BLOCK_TOKENS) * VLLM_BLOCK_TOKENS
    sequences = max(0, kv) // (blocks * per_token)
    items = [
        Item("vLLM weights", "vllm", weights, "P x c / tp"),
        Item("vLLM runtime", "vllm", runtime, f"2 GiB + {batched} c (3f + 4h) + seqs V 8"),
        Item("vLLM KV cache", "vllm", kv, f"the rest: {sequences} x {x.seq_tokens} tokens"),
    ]
    return items, sequences


def make_plan(shape: ModelShape, settings: Settings, *, gpu_gib: float) -> Plan:
    """The budget of ``settings`` for ``shape`` on a GPU of ``gpu_gib`` GiB."""
    gpu = int(gpu_gib * GIB)
    plan = Plan(shape, settings, gpu)
    plan.items += _held(shape, settings, gpu) + _update(shape, settings)
    plan.items += _rollout(shape, settings)
    if settings.engine == "vllm":
        items, plan.vllm_sequences = _vllm(shape, settings, gpu)
        plan.items += items
    return plan
