"""Build proposers from the CLI's --proposer/--llm spec. Proposers are imported lazily so that
the offline path needs no LLM SDK and the LLM path no template library."""
from __future__ import annotations

from ..config import LLMConfig, SearchConfig
from ..errors import UsageError
from .base import Proposer

KNOWN = ("search", "llm")


def parse_llm_spec(spec: str | None) -> LLMConfig:
    """"openai:MODEL" or "anthropic:MODEL" -> LLMConfig."""
    if not spec or ":" not in spec:
        raise UsageError(
            f"--llm needs PROVIDER:MODEL, got {spec!r}",
            "e.g. --llm openai:gpt-4o (OPENAI_BASE_URL/OPENAI_API_KEY) or --llm anthropic:claude-sonnet-4-5",
        )
    provider, model = spec.split(":", 1)
    if provider not in ("openai", "anthropic") or not model:
        raise UsageError(f"unknown LLM provider in {spec!r}", "Use openai:MODEL or anthropic:MODEL.")
    return LLMConfig(provider=provider, model=model)


def make_proposers(spec: str, llm: str | None, search_cfg: SearchConfig | None = None) -> list[Proposer]:
    """"search", "llm" or "search,llm" -> proposers in that order (the loop asks them in turn)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in KNOWN]
    if not names or bad:
        raise UsageError(f"unknown proposer(s) {bad or spec!r}", "Use --proposer search, llm, or search,llm.")
    out: list[Proposer] = []
    for n in names:
        if n == "search":
            from .search.proposer import SearchProposer

            out.append(SearchProposer(search_cfg or SearchConfig()))
        else:
            from .llm.proposer import LLMProposer

            out.append(LLMProposer(parse_llm_spec(llm)))
    return out
