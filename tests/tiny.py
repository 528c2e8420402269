"""Tiny models built in code (hidden size 32, a tokenizer made from the test words): offline, seconds to train."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a an this that film movie story plot acting it is was and but not no very so too quite "
    "good great fun lovely brilliant moving best enjoyable charming "
    "bad awful boring dull terrible worst tedious bland mess "
    "sports game team ball politics vote law tech computer phone . , !"
).split()


def make_tiny_classifier(
    path: str | Path,
    label_names: tuple[str, ...] = ("negative", "positive"),
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
    words: tuple[str, ...] | list[str] = tuple(WORDS),
) -> Path:
    """Save a randomly initialised BERT sequence classifier and its WordPiece tokenizer to `path`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(words)))}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


POSITIVE = ("good", "great", "fun", "lovely", "brilliant", "moving", "best", "enjoyable", "charming")
NEGATIVE = ("bad", "awful", "boring", "dull", "terrible", "worst", "tedious", "bland", "mess")


def make_word_classifier(
    path: str | Path,
    label_names: tuple[str, ...] = ("negative", "positive"),
    weights: dict[str, tuple[float, ...]] | None = None,
    words: tuple[str, ...] | list[str] = tuple(WORDS),
    gain: float = 8.0,
) -> Path:
    """Save a tiny BERT classifier whose hand-set weights make it predict the class with the highest mean word weight.

    `weights[word]` gives one score per class (default, binary: positive words +1.5 for 'positive', negative words
    +1.5 for 'negative', 'not' +2 for 'negative'); every other word scores 0. Each word embedding is zero-mean with
    the same norm (class scores in dims [0, L), their negatives in [L, 2L), a filler pair after), so LayerNorm only
    rescales; attention is uniform (query and key weights are 0) and the value path the identity, so [CLS] holds the
    mean of the sentence's word vectors; the FFN adds nothing, and the classifier reads the class dims.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    if weights is None:
        weights = {w: (-1.5, 1.5) for w in POSITIVE} | {w: (1.5, -1.5) for w in NEGATIVE} | {"not": (2.0, -2.0)}
    num, hidden = len(label_names), 32
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(words) | set(weights)))}
    tokenizer = BertTokenizer(vocab=vocab)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        num_labels=num,
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    model = BertForSequenceClassification(config)
    norm2 = 1.0 + max((sum(x * x for x in s) for s in weights.values()), default=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        emb = model.bert.embeddings.word_embeddings.weight  # (vocab, hidden)
        for word, i in vocab.items():
            s = torch.tensor(weights.get(word, (0.0,) * num), dtype=torch.float32)
            filler = float(norm2 - (s * s).sum()) ** 0.5
            emb[i, :num], emb[i, num : 2 * num] = s, -s
            emb[i, 2 * num], emb[i, 2 * num + 1] = filler, -filler
        eye = torch.eye(hidden)
        layer = model.bert.encoder.layer[0]
        layer.attention.self.value.weight.copy_(eye)
        layer.attention.output.dense.weight.copy_(eye)
        model.bert.pooler.dense.weight.copy_(eye)
        for ln in (model.bert.embeddings.LayerNorm, layer.attention.output.LayerNorm, layer.output.LayerNorm):
            ln.weight.fill_(1.0)
        model.classifier.weight[:, :num] = gain * torch.eye(num)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def make_tiny_causal_lm(
    path: str | Path,
    extra_words: tuple[str, ...] = (
        "Positive",
        "POSITIVE",
        "Negative",
        "classes",
        "Classify",
        "Answer",
        "Text",
        "one",
        "word",
        "into",
        "exactly",
        "of",
        "these",
        "or",
        "with",
        ":",
    ),
    hidden: int = 32,
    seed: int = 0,
    uniform: bool = False,
    chat_template: str | None = None,
) -> Path:
    """Save a random Llama causal LM and a word-level tokenizer built from the test words (plus `extra_words`).

    `uniform`: the final norm is zeroed, so every next-token distribution is uniform over the vocabulary (exact
    label-word sums can then be checked by counting tokens)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>", "<|end|>"]
    words = sorted(set(WORDS) | {"positive", "negative"} | set(extra_words))
    vocab = {w: i for i, w in enumerate(specials + words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if uniform:
        with torch.no_grad():
            model.model.norm.weight.zero_()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_decoder(
    path: str | Path,
    family: str = "llama",
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
    words: tuple[str, ...] | list[str] = tuple(WORDS),
) -> Path:
    """Save a randomly initialised decoder-only LM and its tokenizer to `path`. `family` llama: a word-level tokenizer
    with BOS/EOS/UNK and no pad token (as Llama checkpoints ship); qwen2: Qwen2's own byte-level BPE tokenizer, trained
    here on the test words (its pad token is <|endoftext|>, as Qwen2.5 ships)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _llama_tokenizer(words) if family == "llama" else _qwen2_tokenizer(words)
    families = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    config_class, model_class = families[family]
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    model_class(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _llama_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>"] + sorted(set(words)))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _qwen2_tokenizer(words):
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=alphabet)
    backend.train_from_iterator([" " + " ".join(words)] * 4, trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return Qwen2Tokenizer(vocab=model["vocab"], merges=merges)
