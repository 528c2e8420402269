"""A local causal LM that answers the LLM proposer's chat requests like an endpoint would, with no network.

`demo-llm` (the embedded SmolLM2-135M-Instruct) or any chat model by Hub id or folder. The proposer's worker threads
each send one conversation; `LocalChat` gathers the requests that arrive together into one batched `generate` (left
padding), so the prompt path, the parser, the feedback rounds and the cache are the API proposers' own. Decoding is
greedy when the temperature is 0 (then a reply does not depend on which requests shared its batch); otherwise it
samples after seeding torch with `seed` once per batch.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cod.errors import ProposerError

LOCAL_PREFIX = "local:"  # the endpoint name local models get in cache keys and records


@functools.lru_cache(maxsize=2)
def load_causal_lm(model: str):
    """(model, tokenizer) of a causal LM by name ('demo-llm': the embedded LLM), Hub id or folder; one per process."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cod.modeling.demo.llm import demo_llm_path, is_embedded_llm

    path = demo_llm_path(model.strip()) if is_embedded_llm(model) else model
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@dataclass
class _Request:
    messages: list[dict[str, str]]
    done: threading.Event = field(default_factory=threading.Event)
    content: str = ""
    tokens: int = 0
    error: BaseException | None = None
    limit: int | None = None  # new tokens at most (None: the chat's max_new_tokens)


class LocalChat:
    """Chat completions from a local causal LM; concurrent requests share one batched `generate`."""

    def __init__(
        self,
        model: str,
        temperature: float = 0.0,
        max_new_tokens: int = 160,
        max_batch: int = 8,
        seed: int = 0,
        gather_s: float = 0.02,
    ):
        self.name = model
        self.model, self.tokenizer = load_causal_lm(model)
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ProposerError(
                f"The local model {model!r} has no chat template: use an instruction-tuned chat model."
            )
        self.temperature, self.max_new_tokens, self.max_batch = temperature, max_new_tokens, max_batch
        self.seed, self.gather_s = seed, gather_s
        self._pending: list[_Request] = []
        self._queue = threading.Lock()  # guards _pending
        self._leader = threading.Lock()  # held by the thread running a batch
        self.batches = 0  # generate calls made, for benchmarks

    def __repr__(self) -> str:
        return f"LocalChat(model={self.name!r})"

    def reply_tokens(self, text: str) -> int:
        """New tokens enough for one rewrite of `text`: its length and a half, plus a little (at most the cap)."""
        from cod.modeling.inference import tokenize  # the LM's tokenizer is shared (`load_causal_lm`, fluency)

        ids = tokenize(self.tokenizer, text, add_special_tokens=False)["input_ids"]
        return min(self.max_new_tokens, 3 * len(ids) // 2 + 12)

    def complete(self, messages: list[dict[str, str]], limit: int | None = None) -> tuple[str, int]:
        """The assistant's reply to `messages` (at most `limit` new tokens) and the tokens used (prompt + reply)."""
        request = _Request(messages, limit=limit)
        with self._queue:
            self._pending.append(request)
        while not request.done.is_set():
            if self._leader.acquire(blocking=False):
                try:
                    time.sleep(self.gather_s)  # let the other workers' requests join this batch
                    with self._queue:
                        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                    if batch:
                        self._run(batch)
                finally:
                    self._leader.release()
            else:
                request.done.wait(0.01)
        if request.error is not None:
            raise ProposerError(f"The local model {self.name!r} failed: {request.error}") from request.error
        return request.content, request.tokens

    def _run(self, batch: Sequence[_Request]) -> None:
        try:
            limit = max(r.limit or self.max_new_tokens for r in batch)
            replies = self.generate([r.messages for r in batch], limit)
        except Exception as err:  # every request of the batch gets the error, raised in its own thread
            for r in batch:
                r.error = err
                r.done.set()
            return
        for r, (content, tokens) in zip(batch, replies):
            r.content, r.tokens = content, tokens
            r.done.set()

    def generate(
        self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int | None = None
    ) -> list[tuple[str, int]]:
        """One batched `generate` over the conversations: [(reply, prompt + completion tokens)]."""
        import torch

        from cod.modeling.inference import tokenize  # the LM's tokenizer is shared (`load_causal_lm`, fluency)

        tok = self.tokenizer
        prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in conversations]
        tok.padding_side = "left"  # generation continues every row from its last real token
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        enc = tokenize(tok, prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sample = self.temperature > 0
        if sample:
            torch.manual_seed(self.seed)
        self.batches += 1
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                do_sample=sample,
                pad_token_id=pad,
                **(
                    {"temperature": self.temperature, "top_p": 0.95}
                    if sample
                    else {"temperature": None, "top_p": None, "top_k": None}
                ),
            )
        new = out[:, enc["input_ids"].shape[1] :]  # (batch, generated)
        prompt_tokens = enc["attention_mask"].sum(1).tolist()
        replies = []
        for ids, n_prompt in zip(new, prompt_tokens):
            n_new = int((ids != pad).sum())
            replies.append((tok.decode(ids, skip_special_tokens=True).strip(), int(n_prompt) + n_new))
        return replies
