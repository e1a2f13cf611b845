"""One typed config per component. Each field says what it does; defaults are the sane choice.

Nothing here imports torch or probes hardware.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class JudgeConfig:
    """Correctness judge (`kernelwright check`)."""

    device: str = "cpu"  # "cpu" (Triton interpreter) or "cuda"
    timeout_s: float = 300.0  # wall-clock limit for one whole check of one answer
    # Largest total input elements of one rescaled configuration. The task's own shapes are
    # always checked; variants beyond this are scaled down. None: 2**16 on cpu, 2**24 on cuda.
    max_variant_elements: int | None = None
    min_sweep_configs: int = 8  # stage 2 checks at least this many configurations
    determinism_runs: int = 3  # stage 4: identical inputs this many times, bitwise equal
    seed: int | None = None  # None: a secret seed from os.urandom per check
    host_memory_gb: float = 16.0  # RLIMIT_AS for the worker on cpu (CUDA reserves huge VA, so not there)
    gpu_memory_fraction: float = 0.9  # torch.cuda.set_per_process_memory_fraction in the worker
    require_custom_kernel: bool = True  # reject answers where no kernel of their own ran
    sandbox_namespaces: bool = True  # new user/pid/net/mount namespaces via unshare(1) when available
    # cuda: profile one forward for the share of GPU time in the answer's own kernels (reported, not
    # judged). The profiler's start-up cost 6 s of an 85 s full-size check on an H100; the loop,
    # which records no share, turns it off.
    kernel_share: bool = True


@dataclass
class TimerConfig:
    """Timing judge (`kernelwright bench`, keep/revert in the loop)."""

    device: str = "cuda"
    timeout_s: float = 600.0
    warmup_ms: float = 25.0  # warm-up time before timed repetitions
    rep_ms: float = 100.0  # target time of timed repetitions
    min_reps: int = 10
    max_reps: int = 1000
    input_sets: int = 4  # rotating fresh input sets
    flush_l2_bytes: int = 256 * 1024 * 1024  # written between repetitions
    graph_below_us: float = 20.0  # use CUDA-graph timing below this median
    # GPU spin queued before each timed call's start event: the host's enqueue time (up to this)
    # stays out of the events, which then time the GPU's work; the host's time is reported apart.
    # Small enough that host-side compute cannot hide a real output's production in it.
    lead_us: float = 300.0
    keep_min_gain: float = 0.02  # "faster" only when the median gain exceeds max(this, A/A spread)
    baselines: tuple[str, ...] = ("eager", "compile", "compile-max-autotune", "liger")
    # Device memory for the rotating input sets: fewer sets (never under 2) when one set is larger.
    max_input_bytes: int = 1024**3
    # A median below (1 - this) x the physical floor is impossible: rejected. The slack covers a
    # tuned kernel beating torch's own copy by a few %; cheats are off by orders of magnitude.
    floor_slack: float = 0.15
    suspect_speedup: float = 10.0  # flag (human review) an answer faster than eager by more than this
    # Reject when the judge's wall clock per back-to-back call exceeds 3 x the events median + this.
    wall_margin_ms: float = 0.25
    ceilings_cache: str = ""  # "" = ~/.cache/kernelwright/ceilings.json (per GPU model)


@dataclass
class LoopConfig:
    """The optimization loop (`kernelwright optimize`)."""

    budget_s: float = 8 * 3600.0  # wall-clock budget for the whole run
    max_experiments: int | None = None  # across all tasks; None: until budget or move-on rules
    beam_width: int = 3  # best nodes expanded per round
    # Candidates asked for per round (split over the parents); None: 4 on cpu, 8 on cuda, where
    # more checks run side by side.
    candidates_per_round: int | None = None
    max_consecutive_failures: int = 12  # move on after this many non-improving experiments
    roofline_stop: float = 0.90  # move on at >= this fraction of the measured ceiling
    target_speedup: float | None = None  # move on once reached
    # Candidates checked (and, on cuda, compiled and warmed for timing) side by side, each in its own
    # worker process. None: 2 on cpu; on cuda min(8, CPU cores / 2), fewer for a task whose checks
    # would not fit in GPU memory that many times over.
    compile_workers: int | None = None
    # Move-on rules in force, by name (loop/rules.py holds their definitions). AutoKernel's four
    # (budget, plateau, roofline, target) plus the experiment cap and, on a CPU where nothing is
    # timed, stopping at the first correct answer.
    move_on: tuple[str, ...] = ("budget", "max-experiments", "plateau", "roofline", "target", "cpu-correct")
    diversity_slots: int = 1  # of beam_width parents, this many go to the best of a family not yet chosen
    rejected_shown: int = 8  # rejected children (stage + message) handed to a proposer
    # A proposer that fails (raises, garbage) or offers only already-judged sources for one parent
    # this many times in a row is not asked about that parent again (each failure still costs a
    # row; a resumed proposer may first repeat what it proposed before, so not at the first repeat).
    repeat_limit: int = 3
    # On cuda, no check's GPU request runs during a timed batch (judge/gate.py): checks launch kernels
    # on the same GPU and would skew the times. False overlaps them (more experiments/hour, noisier).
    quiet_timing: bool = True
    # Each candidate is timed interleaved with the incumbent, and against the task's eager row (timed
    # once per task). The full TimerConfig.baselines (torch.compile, max-autotune, Liger) are timed
    # once per task, for its best answer, when the task moves on (final_timing).
    final_timing: bool = True


@dataclass
class SearchConfig:
    """Offline template proposer."""

    max_configs_per_family: int = 64  # after roofline/occupancy pruning
    halving_rounds: int = 3  # successive halving rounds over configs


@dataclass
class LLMConfig:
    """LLM proposer. Endpoint and key come from the SDKs' own variables, never from here."""

    provider: str = "openai"  # "openai" or "anthropic"
    model: str = ""
    max_tokens: int = 8192
    temperature: float = 0.7
    request_timeout_s: float = 300.0
    max_retries: int = 4  # on timeouts, 429 and 5xx, with backoff
    debug_attempts: int = 2  # debugger repairs per rejected answer
    stream: bool = False  # stream replies (SSE); a stream cut mid-reply is retried whole
    retry_backoff_s: float = 1.0  # our own retries (cut streams, adapted params): this * 2**k seconds
    reply_retries: int = 2  # extra writer/debugger turns when a reply has no usable ```python block
    candidates_per_call: int = 1  # candidates written per propose() (each costs planner + writer calls)
    # OpenAI's reasoning models refuse "max_tokens", older local servers "max_completion_tokens";
    # the client switches once when a 400 names the one it sent.
    openai_max_tokens_param: str = "max_completion_tokens"
    max_prompt_chars: int = 6000  # cap on each log/message/source excerpt put into a prompt
    # USD per million (input, output) tokens; None: looked up in propose/llm/prices.json by model.
    price_per_mtok: tuple[float, float] | None = None
    # A playbook findings file shared across runs ("" = only the run's own copy, DIR/llm/playbook.md).
    findings_path: str = ""


@dataclass
class PipelineConfig:
    """Whole-model pipeline: profile, rank, extract, integrate, report."""

    profile_iters: int = 3  # warm forward passes profiled
    max_tasks: int = 8  # extracted tasks optimized, hottest first
    min_share: float = 0.01  # ignore targets below this share of GPU time (not applied to CPU-time proxies)
    e2e_check_timeout_s: float = 900.0  # judge check of the whole optimized model (it re-exports per shape)
    e2e_baselines: tuple[str, ...] = ("eager", "compile")  # timed beside the optimized model, in one run
    speedup_priors: dict[str, float] = field(
        default_factory=lambda: {
            "pointwise": 1.6,
            "reduction": 1.5,
            "norm": 1.8,
            "softmax": 1.7,
            "loss": 1.8,
            "scan": 1.5,
            "matmul": 1.1,
            "attention": 1.3,
            "other": 1.0,
        }
    )
