"""A local causal LM as a teacher: one forward per text, the next-token probability of each label's words.

The text goes into the prompt (through the model's chat template when it has one), and the teacher reads the
distribution over the first answer token: each label gets the probability of the first token of its words in every
case and leading-space variant (summed once per distinct token), then the labels are renormalised. The sum before
renormalising is the label mass. Texts are batched with left padding, so the answer position is the last column.
Any `AutoModelForCausalLM` works: a Hub id, a local folder, a `.gguf` file (de-quantised by transformers), or
`demo-llm`, the embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cod.errors import ModelError
from cod.modeling.teachers.base import Score, ScoredTeacher
from cod.modeling.teachers.cache import ScoreCache
from cod.modeling.teachers.prompt import Prompt, variants

log = logging.getLogger(__name__)


def label_token_ids(tokenizer, prompt: Prompt) -> list[list[int]]:
    """Per label, the distinct first tokens of its words' variants; a token two labels share counts for neither.

    A word longer than one token counts by its first token (one forward per text), which must keep at least three
    characters of the word."""
    per_label = []
    for words in prompt.label_words:
        ids = []
        for word in words:
            for form in variants(word):
                tokens = tokenizer(form, add_special_tokens=False)["input_ids"]
                if not tokens or tokens[0] == getattr(tokenizer, "unk_token_id", None):
                    continue
                # A first token that keeps too little of the word ("N" of "NEGATIVE") is not an answer.
                if len(tokenizer.decode(tokens[:1]).strip()) >= min(3, len(word.strip())):
                    ids.append(int(tokens[0]))
        per_label.append(list(dict.fromkeys(ids)))
    counts: dict[int, int] = {}
    for ids in per_label:
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
    kept = [[i for i in ids if counts[i] == 1] for ids in per_label]
    for name, words, ids in zip(prompt.label_names, prompt.label_words, kept):
        if not ids:
            raise ModelError(
                f"The label {name!r} has no answer token of its own (words {list(words)} start with the same token as "
                "another label's, or are unknown to the tokenizer): give it distinct label words (--label-words)."
            )
    return kept


def has_chat_template(tokenizer) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer, prompt: Prompt, text: str, chat: bool) -> str:
    """The full model input for one text: the chat template's assistant turn start, or the prompt and 'Answer:'."""
    if chat:
        return tokenizer.apply_chat_template(prompt.messages(text), tokenize=False, add_generation_prompt=True)
    system = f"{prompt.system}\n\n" if prompt.system else ""
    return f"{system}{prompt.user_message(text)}\nAnswer:"


class CausalLMTeacher(ScoredTeacher):
    """A causal LM scored on label words at the answer position (see the module docstring)."""

    kind = "causal-lm"

    def __init__(
        self,
        model,
        tokenizer,
        prompt: Prompt,
        name: str = "",
        identity: str = "",
        calibrate: bool = False,
        cache: ScoreCache | None | bool = None,
        max_length: int = 128,
        batch_size: int = 8,
        chat_template: str = "auto",
        low_mass: float = 0.1,
    ):
        """`identity` names the weights in cache keys (a resolved path and its time stamp, or a Hub id and commit)."""
        super().__init__(
            name or getattr(model.config, "_name_or_path", "") or "causal-lm", prompt, calibrate, cache, low_mass
        )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.identity = identity or self.name
        self.max_length = max_length
        self.batch_size = batch_size
        if chat_template not in ("auto", "on", "off"):
            raise ModelError(f"chat_template {chat_template!r} is not auto, on or off.")
        if chat_template == "on" and not has_chat_template(tokenizer):
            raise ModelError(f"{self.name!r} has no chat template: use chat_template 'auto' or 'off'.")
        self.chat = has_chat_template(tokenizer) if chat_template == "auto" else chat_template == "on"
        if tokenizer.pad_token is None:  # decoder tokenizers often have none: pad with EOS (masked out anyway)
            tokenizer.pad_token = tokenizer.eos_token
        self.label_ids = label_token_ids(tokenizer, prompt)
        self._embeddings: dict[str, np.ndarray] = {}  # text -> (hidden,), in memory only (large)
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.identity,
            "prompt": self.prompt.version,
            "chat": self.chat,
            "max_length": self.max_length,
            "label_ids": self.label_ids,
        }

    def info(self) -> dict[str, Any]:
        info = super().info()
        info.update(
            chat_template=self.chat,
            device=str(self.device),
            label_tokens={
                n: self.tokenizer.convert_ids_to_tokens(ids) for n, ids in zip(self.label_names, self.label_ids)
            },
        )
        return info

    def inputs(self, texts: Sequence[str]) -> list[str]:
        """The rendered model inputs, each text cut to `max_length` tokens first (the instructions stay whole)."""
        cut = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            cut.append(self.tokenizer.decode(ids[: self.max_length]) if len(ids) > self.max_length else text)
        return [render(self.tokenizer, self.prompt, t, self.chat) for t in cut]

    @torch.inference_mode()
    def answer_probs(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(next-token probabilities at the answer position (n, vocab), mean-pooled last hidden states (n, H))."""
        self.tokenizer.padding_side = "left"  # the answer position is then the last column for every row
        # The chat template already holds the special tokens (BOS and the turn markers).
        enc = self.tokenizer(self.inputs(texts), return_tensors="pt", padding=True, add_special_tokens=not self.chat)
        enc = enc.to(self.device)
        mask = enc["attention_mask"]  # (batch, tokens)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift real tokens' positions
        extra = {"logits_to_keep": 1} if self._keeps_logits else {}  # the vocabulary projection of one position only
        out = self.model(
            input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions, output_hidden_states=True, **extra
        )
        probs = torch.softmax(out.logits[:, -1, :].float(), dim=-1)  # (batch, vocab)
        last = out.hidden_states[-1].float()  # (batch, tokens, H)
        pooled = (last * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # (batch, H)
        return probs.cpu(), pooled.cpu()

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(the labels' summed answer probabilities (n, L), pooled states (n, H))."""
        probs, pooled = self.answer_probs(texts)
        labels = torch.stack([probs[:, ids].sum(dim=-1) for ids in self.label_ids], dim=-1)  # (batch, L)
        return labels.numpy(), pooled.numpy()

    def _score(self, texts: list[str]) -> list[Score]:
        scores: dict[str, Score] = {}
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad little
        for start in range(0, len(order), self.batch_size):
            batch = [texts[i] for i in order[start : start + self.batch_size]]
            labels, pooled = self._forward(batch)
            for j, text in enumerate(batch):
                scores[text] = Score([float(x) for x in labels[j]])
                self._embeddings[text] = pooled[j]
        return [scores[t] for t in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled last hidden states of the prompted texts, (n, hidden) (run again for disk-cached texts)."""
        texts = list(texts)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._embeddings]
            for start in range(0, len(missing), self.batch_size):
                batch = missing[start : start + self.batch_size]
                _, pooled = self._forward(batch)
                self._embeddings.update(zip(batch, pooled))
            if not texts:
                return np.zeros((0, self.hidden_size), dtype=np.float32)
            return np.stack([self._embeddings[t] for t in texts])


def resolve_causal_lm(name: str) -> tuple[str, str | None]:
    """(folder or Hub id, GGUF file name or None) for `demo-llm`, a `.gguf` file, a folder or a Hub id."""
    from cod.modeling.demo.llm import demo_llm_path, is_embedded_llm

    if is_embedded_llm(name):
        return str(demo_llm_path(name.strip())), None
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(
                f"No GGUF file at {name!r}: give an existing .gguf file, a folder, a Hub id or 'demo-llm'."
            )
        return str(path.parent), path.name
    return name, None


def model_identity(source: str, gguf: str | None, model) -> str:
    """What names these weights in cache keys: a local path and its time stamp, or a Hub id and its commit."""
    path = Path(source).expanduser()
    target = path / gguf if gguf else path / "config.json"
    if target.exists():
        return f"{path.resolve() / (gguf or '')}@{target.stat().st_mtime_ns}"
    return f"{source}@{getattr(model.config, '_commit_hash', None) or 'main'}"


def load_causal_lm(name: str, device, torch_dtype, trust_remote_code: bool = False):
    """(model, tokenizer, identity) of a causal LM on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cod.modeling.runtime import load_error as _load_error

    source, gguf = resolve_causal_lm(name)
    extra = {"gguf_file": gguf} if gguf else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=trust_remote_code, **extra
        )
    except ImportError as err:  # transformers raises this when the `gguf` package is missing
        raise ModelError(f"Reading {name!r} needs the gguf package: `pip install gguf==0.19.0` ({err}).") from err
    except (OSError, ValueError) as err:
        raise _load_error(name, err, "causal LM") from err
    return model.to(device).eval(), tokenizer, model_identity(source, gguf, model)
