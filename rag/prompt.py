"""The prompt: instructions + numbered sources + recent turns + the question, within a token budget.

Ollama silently drops the oldest messages (and then truncates) when a prompt exceeds `num_ctx`,
which defaults to far less than most models can take. So we count tokens ourselves, trim
history and sources to a budget, and send an explicit `num_ctx` sized to the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.embedders import estimate_tokens
from rag.types import Passage

MESSAGE_OVERHEAD = 8  # role markers and separators the chat template adds per message
MIN_NUM_CTX = 2048
# Small models follow "Answer in Portuguese." far better than "in the language of the question".
RULES = (
    "Answer the customer's question using only the numbered sources below. "
    "Cite the sources you used like [1] or [2]. If the sources do not contain the answer, "
    "reply with exactly NOT_IN_SOURCES and nothing else. Answer in {language}, briefly."
)
# The marker the rules ask for, as models write it back (case, spaces or underscores vary).
NOT_IN_SOURCES = re.compile(r"\bnot[ _]?in[ _]?(?:the[ _]?)?sources\b", re.IGNORECASE)


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    prompt_tokens: int  # our (generous) estimate of what the server will count
    num_ctx: int
    context_limit: int  # min(model's trained context, configured maximum)
    passages: list[Passage]  # the sources actually sent, numbered from 1 in this order
    history_used: int
    dropped_passages: int = 0
    dropped_turns: int = 0
    notes: list[str] = field(default_factory=list)


def count_tokens(text: str) -> int:
    return estimate_tokens(text) + MESSAGE_OVERHEAD


def format_source(number: int, passage: Passage, text: str | None = None) -> str:
    """A numbered source under its heading; never its filename, which a model would repeat to customers."""
    where = f" ({passage.heading})" if passage.heading else ""
    return f"[{number}]{where}\n{text if text is not None else passage.text}"


def _truncate_to(text: str, tokens: int) -> str:
    """Cut text to roughly `tokens` of our estimate, at a word boundary."""
    if tokens <= 0:
        return ""
    words = text.split()
    keep = max(1, int(len(words) * tokens / max(estimate_tokens(text), 1)))
    return " ".join(words[:keep]) + (" …" if keep < len(words) else "")


def build_prompt(
    *,
    instructions: str,
    question: str,
    passages: list[Passage],
    history: list[dict[str, str]],
    context_limit: int,
    answer_tokens: int,
    history_share: float = 0.25,
    language_name: str = "English",
) -> Prompt:
    """Fit everything in `context_limit - answer_tokens`: the question and instructions always,
    then the best sources, then the most recent turns (at least `history_share` of what is left
    is kept for turns that need it). The reply is asked for in `language_name` (English name: "Portuguese")."""
    budget = max(context_limit - answer_tokens, 256)
    header = (instructions.strip() + "\n\n" + RULES.format(language=language_name)).strip()
    fixed = count_tokens(header + "\n\nSources:\n") + count_tokens(question)

    turns = [t for t in history if t.get("role") in ("user", "assistant") and t.get("content")]
    turn_costs = [count_tokens(t["content"]) for t in turns]
    remaining = budget - fixed
    reserve_for_history = min(sum(turn_costs), int(max(remaining, 0) * history_share))

    sources: list[str] = []
    used: list[Passage] = []
    source_budget = remaining - reserve_for_history
    for passage in passages:
        text = format_source(len(used) + 1, passage)
        cost = estimate_tokens(text) + 2
        if cost > source_budget:
            if used:  # sources are ranked: the rest would help less than they cost
                break
            shortened = _truncate_to(passage.text, source_budget - 40)
            if not shortened:
                break
            text = format_source(1, passage, shortened)
            cost = estimate_tokens(text) + 2
        sources.append(text)
        used.append(passage)
        source_budget -= cost
    remaining -= sum(estimate_tokens(s) + 2 for s in sources)

    kept: list[dict[str, str]] = []
    for turn, cost in zip(reversed(turns), reversed(turn_costs), strict=True):  # newest first
        if cost > remaining:
            break
        kept.insert(0, {"role": turn["role"], "content": turn["content"]})
        remaining -= cost

    system = header + "\n\nSources:\n" + ("\n\n".join(sources) if sources else "(none)")
    messages = [{"role": "system", "content": system}, *kept, {"role": "user", "content": question}]
    prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
    return Prompt(
        messages=messages,
        prompt_tokens=prompt_tokens,
        num_ctx=choose_num_ctx(prompt_tokens, answer_tokens, context_limit),
        context_limit=context_limit,
        passages=used,
        history_used=len(kept),
        dropped_passages=len(passages) - len(used),
        dropped_turns=len(turns) - len(kept),
    )


def choose_num_ctx(prompt_tokens: int, answer_tokens: int, context_limit: int) -> int:
    """Room for the prompt and the answer, rounded up to 512, never above the model's limit."""
    wanted = prompt_tokens + answer_tokens
    rounded = -(-wanted // 512) * 512
    return max(min(max(rounded, MIN_NUM_CTX), context_limit), min(MIN_NUM_CTX, context_limit))


def was_truncated(prompt_eval_count: int | None, num_ctx: int, answer_tokens: int) -> bool:
    """The server reports how many prompt tokens it evaluated: reaching the window (less the
    room kept for the answer) means it had to cut the prompt to fit."""
    if prompt_eval_count is None:
        return False
    return prompt_eval_count >= num_ctx - min(answer_tokens, num_ctx // 4)
