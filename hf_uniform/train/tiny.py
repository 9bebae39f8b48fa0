"""A tiny random LLaMA with a byte-level BPE tokenizer trained on your texts: offline smoke runs and tests.

The model is ``LlamaForCausalLM`` built from a small ``LlamaConfig`` (random weights, seeded); the tokenizer
is a byte-level BPE trained with ``tokenizers`` on the given texts, wrapped in ``PreTrainedTokenizerFast``
with ChatML special tokens and a chat template (assistant turns inside ``{% generation %}`` markers, so
TRL's ``assistant_only_loss`` works too). Nothing is downloaded.

>>> import tempfile
>>> path = build_tiny_llama(tempfile.mkdtemp(), ["hello world", "hello there"] * 20, vocab_size=300)
>>> from transformers import AutoTokenizer
>>> AutoTokenizer.from_pretrained(path).eos_token
'<|im_end|>'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UniformError
from ..io import atomic_write_json

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPEC_FILE = "tiny_llama.json"


def _spec_hash(texts: list[str], spec: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts``, with ChatML specials and template.

    Example:
        >>> tok = train_bpe_tokenizer(["abc abd"] * 10, vocab_size=280)
        >>> tok.decode(tok("abc")["input_ids"])
        'abc'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise UniformError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} for a byte-level BPE, "
                           f"got {vocab_size}")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>",
                                  unk_token=None, bos_token=None,
                                  additional_special_tokens=["<|im_start|>", "<|endoftext|>"])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_llama(
    output_dir: str | os.PathLike,
    texts: Iterable[str],
    *,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    max_position_embeddings: int = 2048,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Build (or reuse) a tiny random ``LlamaForCausalLM`` and its BPE tokenizer in ``output_dir``.

    The folder loads with ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``. A
    folder built earlier from the same texts and settings is reused (``tiny_llama.json`` holds the key);
    ``overwrite=True`` rebuilds.

    Args:
        output_dir: where to save the model and tokenizer.
        texts: training texts for the tokenizer (e.g. the rendered training examples).
        vocab_size: BPE vocabulary size (the model's vocabulary is the tokenizer's real size).
        hidden_size: model width.
        intermediate_size: MLP width.
        num_hidden_layers: number of decoder layers.
        num_attention_heads: attention heads.
        num_key_value_heads: key/value heads (grouped-query attention).
        max_position_embeddings: longest sequence.
        seed: seed of the random weights.
        overwrite: rebuild even when a matching build exists.

    Returns:
        ``Path`` of the folder.

    Example:
        >>> import tempfile
        >>> from transformers import AutoModelForCausalLM
        >>> p = build_tiny_llama(tempfile.mkdtemp(), ["a tiny corpus"] * 5, vocab_size=280, hidden_size=32)
        >>> AutoModelForCausalLM.from_pretrained(p).config.hidden_size
        32
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    texts = [t for t in texts if t]
    if not texts:
        raise UniformError("build_tiny_llama needs at least one non-empty text to train its tokenizer")
    spec = {"vocab_size": vocab_size, "hidden_size": hidden_size, "intermediate_size": intermediate_size,
            "num_hidden_layers": num_hidden_layers, "num_attention_heads": num_attention_heads,
            "num_key_value_heads": num_key_value_heads, "max_position_embeddings": max_position_embeddings,
            "seed": seed}
    if hidden_size % num_attention_heads or num_attention_heads % num_key_value_heads:
        raise UniformError(f"hidden_size ({hidden_size}) must be divisible by num_attention_heads "
                           f"({num_attention_heads}), which must be divisible by num_key_value_heads "
                           f"({num_key_value_heads})")
    out = Path(output_dir)
    key = _spec_hash(texts, spec)
    marker = out / SPEC_FILE
    if not overwrite and marker.exists() and (out / "config.json").exists():
        try:
            if json.loads(marker.read_text()).get("key") == key:
                logger.info("reusing the tiny LLaMA in %s", out)
                return out
        except (OSError, json.JSONDecodeError):
            pass
    tok = train_bpe_tokenizer(texts, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, max_position_embeddings=max_position_embeddings,
        bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    atomic_write_json(marker, {"key": key, **spec, "actual_vocab_size": len(tok), "parameters": n_params,
                               "texts": len(texts)})
    logger.info("built a tiny LLaMA (%d parameters, vocabulary %d) in %s", n_params, len(tok), out)
    return out
