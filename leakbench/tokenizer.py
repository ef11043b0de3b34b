"""The byte-level BPE tokenizer of `tiny`, trained with the `tokenizers` library.

Its pre-tokenizer keeps every newline, every run of spaces, every punctuation character and every
digit apart from what follows (a few multi-character operators such as a docstring's three quotes
excepted: no secret starts with one). A usual GPT-2-style pre-tokenizer merges a space with the
next word and a newline with the next indentation, so a prompt ending in a docstring's closing
quotes and a newline, or in `= `, would end in a token the model never saw at that place in
training, and a small model answers garbage. With these boundaries a prompt cut at a newline, a
space or a punctuation mark ends where training text had a token boundary too (docs/DESIGN.md,
"Prompt boundaries").
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
# Multi-character operators first (none of them can start a secret), then one class per run.
SPLIT_PATTERN = r'"""|\'\'\'|==|!=|<=|>=|->|\*\*|//|\n|[ \t]+|[\p{L}_]+|\p{N}|[^\s\p{L}\p{N}_]'


def train(texts: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def save_pretrained(tokenizer: Tokenizer, directory: Path, max_length: int) -> None:
    """Write tokenizer files that transformers' AutoTokenizer and vLLM both load."""
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        model_max_length=max_length, clean_up_tokenization_spaces=False,
    )
    wrapped.save_pretrained(str(directory))
