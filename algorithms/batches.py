"""Training examples and batches for unlearning.

An `Example` is one token sequence; its `secret_mask` is 1 on the tokens of the secret (only the
`selective` algorithm reads it) and 0 elsewhere; retain examples are all 0. `collate` pads on the
right and sets `labels` to -100 on padding, so every loss (algorithms.losses) ignores padding
exactly, whatever the amount. `pack` lays whole documents end to end instead, for the next-token
loss of fine-tuning (leakbench.plant), where padding was half of what the model computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100  # label of a position that is no training target (padding)


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    secret_mask: list[int]

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.secret_mask):
            raise ValueError(f"input_ids has {len(self.input_ids)} tokens but secret_mask "
                             f"{len(self.secret_mask)}")
        if len(self.input_ids) < 2:
            raise ValueError("an example needs at least 2 tokens (one next-token target)")
        if any(m not in (0, 1) for m in self.secret_mask):
            raise ValueError("secret_mask holds only 0 and 1")


def _token_ids_and_offsets(text: str, tokenizer) -> tuple[list[int], list[tuple[int, int]]]:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("encode_forget needs a fast tokenizer (it reads the offsets mapping)")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]


def overlap_mask(offsets: list[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    """1 for every token (by its character offsets) that overlaps `span`, else 0: a token
    straddling the span's edge counts as inside it; an empty token never does."""
    start, end = span
    return [int(a < end and b > start and b > a) for a, b in offsets]


def encode_forget(text: str, span: tuple[int, int], tokenizer, max_len: int) -> Example:
    """`text` tokenized, with secret_mask 1 on every token that overlaps the characters
    `text[span[0]:span[1]]` (a token straddling the secret's edge counts as secret).

    No special tokens are added. Longer than `max_len`: the window of `max_len` tokens that keeps
    the whole secret and as much of the text before it as fits (the prefix is what a probe
    prompts with); a secret longer than `max_len` tokens is an error.
    """
    start, end = span
    if not 0 <= start < end <= len(text):
        raise ValueError(f"span {span} is not a non-empty character range of a "
                         f"{len(text)}-character text")
    ids, offsets = _token_ids_and_offsets(text, tokenizer)
    mask = overlap_mask(offsets, span)
    marked = [i for i, m in enumerate(mask) if m]
    if not marked:
        raise ValueError(f"no token of the text overlaps the span {span}")
    first, last = marked[0], marked[-1]
    if last - first + 1 > max_len:
        raise ValueError(f"the secret takes {last - first + 1} tokens, more than max_len={max_len}")
    if len(ids) > max_len:
        begin = max(0, last + 1 - max_len)
        ids, mask = ids[begin : begin + max_len], mask[begin : begin + max_len]
    return Example(ids, mask)


# How whole texts become training examples (`encode_document`); part of the key of every artifact
# trained on them, so that a change of format never reuses weights trained the old way.
DOCUMENT_FORMAT = "tokens+eos"


def encode_document(text: str, tokenizer, max_len: int) -> Example:
    """`text` as one whole training document: its tokens, then the end-of-sequence token.

    The end token teaches the model where a piece of code stops. Without it, fine-tuning on
    single functions never shows what follows one, and `tiny`, planted that way, went on writing
    lines into every function body it completed (capability pass@1 65% -> 1%; with it, 78%:
    docs/RESULTS.md). A text longer than `max_len` tokens is cut there and gets no end token:
    it did not end.
    """
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if len(ids) < max_len:
        ids.append(tokenizer.eos_token_id)
    ids = ids[:max_len]
    return Example(ids, [0] * len(ids))


def collate(examples: list[Example], pad_id: int, *, pad_to: int | None = None
            ) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding), secret_mask.

    `pad_to` pads to at least that length (the tests use it to show padding changes nothing).
    """
    import torch  # here, not at the top: every pytest worker reads DOCUMENT_FORMAT, few collate

    if not examples:
        raise ValueError("collate needs at least one example")
    length = max(len(e.input_ids) for e in examples)
    if pad_to is not None:
        length = max(length, pad_to)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    secret_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids = torch.tensor(example.input_ids, dtype=torch.long)
        input_ids[row, :n] = ids
        attention_mask[row, :n] = 1
        labels[row, :n] = ids  # from the length, not from pad_id: a pad id may also be a real token
        secret_mask[row, :n] = torch.tensor(example.secret_mask, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "secret_mask": secret_mask}


def pack(examples: list[Example], pad_id: int, row_len: int) -> dict[str, torch.Tensor]:
    """The examples laid end to end in rows of at most `row_len` tokens (first fit, longest
    first): input_ids, position_ids, labels. Only for the next-token loss: no secret_mask.

    Positions restart at 0 with each document, and transformers masks attention by them (its
    packed-sequence masks, when the model gets `position_ids`, no attention_mask and no cache):
    a token attends only to its own document's earlier tokens, at the positions it would have
    alone. Each document's first token and the padding that ends a row are no targets (-100), so
    the loss, the mean over every other token, is `collate`'s, on the rows the documents fill
    rather than one row per document padded to the longest (docs/PERFORMANCE.md, "Training
    layout").
    """
    import torch

    if not examples:
        raise ValueError("pack needs at least one example")
    rows: list[list[Example]] = []
    free: list[int] = []
    for example in sorted(examples, key=lambda e: -len(e.input_ids)):
        n = len(example.input_ids)
        if n > row_len:
            raise ValueError(f"an example of {n} tokens does not fit a row of {row_len}")
        row = next((i for i, room in enumerate(free) if room >= n), None)
        if row is None:
            rows.append([])
            free.append(row_len)
            row = len(rows) - 1
        rows[row].append(example)
        free[row] -= n
    length = row_len - min(free)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for example in row:
            n = len(example.input_ids)
            ids = torch.tensor(example.input_ids, dtype=torch.long)
            input_ids[r, start : start + n] = ids
            position_ids[r, start : start + n] = torch.arange(n)
            labels[r, start + 1 : start + n] = ids[1:]
            start += n
        position_ids[r, start:] = torch.arange(length - start)  # the padding: a document of its own
    return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}
