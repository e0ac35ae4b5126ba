"""ListOps (Nangia & Bowman 2018, as in Long Range Arena, Tay et al. 2021): generator and tokens.

An expression is a digit 0-9 or an operator applied to 2..max_args expressions and closed by
`]`, e.g. `[MAX 2 9 [MIN 4 7 ] 0 ]` = 9. Operators: `[MAX`, `[MIN`, `[MED` (median; for an
even count the mean of the two middle values rounded down, as LRA's `int(np.median(...))`) and
`[SM` (sum modulo 10). The label is the value of the whole expression, 0-9.

The generator draws trees as LRA's `listops.py` does (its defaults are our defaults): a node at
depth < max_depth is an operator with probability 0.25, else a digit; a node at max_depth is a
digit (so at most max_depth - 1 operators are nested); the operator and the digits are uniform,
the argument count uniform over 2..max_args; the root is at depth 1. Only trees whose length in
tokens (operators, digits and `]`; LRA's parentheses are not tokens) lies strictly between
min_length and max_length are kept, and each expression at most once across all splits. LRA
values: max_depth 10, max_args 10, 500 < length < 2000, 96,000 / 2,000 / 2,000 examples.

Tokens (one-hot per batch downstream): 0 padding, 1-10 the digits 0-9, 11-14 the operators
`[MAX [MIN [MED [SM`, 15 `]`; VOCAB_SIZE = 16. Shapes: n examples, w the stored width.
"""

from __future__ import annotations

import dataclasses

import numpy as np

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
END = "]"
PAD = 0
DIGIT_BASE = 1
OPERATOR_BASE = 11
END_ID = 15
VOCAB = ("<pad>", *(str(d) for d in range(10)), *OPERATORS, END)
VOCAB_SIZE = len(VOCAB)
TOKEN_IDS = {token: i for i, token in enumerate(VOCAB) if i != PAD}
NUM_CLASSES = 10
OPERATOR_PROB = 0.25  # LRA's VALUE_P: chance that a node above max_depth is an operator
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class ListOpsParams:
    """What the generator draws: grammar limits, split sizes and the seed (LRA's values)."""

    max_depth: int = 10
    max_args: int = 10
    min_length: int = 500
    max_length: int = 2000
    num_train: int = 96_000
    num_validation: int = 2_000
    num_test: int = 2_000
    seed: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"ListOpsParams.{field.name}={value!r}; valid: an integer >= 0")
        for name, low in (("max_depth", 1), ("max_args", 2), ("max_length", 2)):
            if getattr(self, name) < low:
                raise ValueError(
                    f"ListOpsParams.{name}={getattr(self, name)!r}; valid: an integer >= {low}"
                )
        if self.min_length + 1 >= self.max_length:
            raise ValueError(
                f"ListOpsParams.min_length={self.min_length!r} leaves no length strictly "
                f"below max_length={self.max_length!r}; valid: min_length <= max_length - 2"
            )
        if self.max_depth == 1 and self.min_length >= 1:
            raise ValueError(
                f"ListOpsParams.max_depth=1 gives only single digits (length 1), which "
                f"min_length={self.min_length!r} rejects; valid: max_depth >= 2 or min_length 0"
            )

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}


class _Uniforms:
    """Uniform [0, 1) draws from a seeded Generator, fetched in blocks (one call per 4096)."""

    def __init__(self, rng: np.random.Generator, block: int = 4096):
        self._rng, self._block = rng, block
        self._buffer: list[float] = []
        self._next = 0

    def __call__(self) -> float:
        if self._next == len(self._buffer):
            self._buffer = self._rng.random(self._block).tolist()
            self._next = 0
        self._next += 1
        return self._buffer[self._next - 1]


class _TooLong(Exception):
    pass


def apply_operator(operator: str, args: list[int]) -> int:
    """The value of `[OP args ]` for digits `args` (MED of an even count: lower mean)."""
    if operator == "[MAX":
        return max(args)
    if operator == "[MIN":
        return min(args)
    if operator == "[SM":
        return sum(args) % 10
    if operator == "[MED":
        ordered = sorted(args)
        half = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[half]
        return (ordered[half - 1] + ordered[half]) // 2
    raise ValueError(f"unknown ListOps operator {operator!r}; valid: {', '.join(OPERATORS)}")


def _draw(uniform: _Uniforms, params: ListOpsParams, depth: int, out: list[int]) -> int:
    """Appends one subtree's tokens to `out` and returns its value; _TooLong past max_length."""
    if len(out) + 1 >= params.max_length:
        raise _TooLong
    is_operator = depth < params.max_depth and uniform() <= OPERATOR_PROB
    if not is_operator:
        digit = int(uniform() * 10)
        out.append(DIGIT_BASE + digit)
        return digit
    num_args = 2 + int(uniform() * (params.max_args - 1))
    operator = int(uniform() * len(OPERATORS))
    out.append(OPERATOR_BASE + operator)
    args = [_draw(uniform, params, depth + 1, out) for _ in range(num_args)]
    if len(out) + 1 >= params.max_length:
        raise _TooLong
    out.append(END_ID)
    return apply_operator(OPERATORS[operator], args)


def draw_expression(uniform: _Uniforms, params: ListOpsParams) -> tuple[list[int], int] | None:
    """One tree as (token ids, value), or None when its length is outside the limits.

    A tree is abandoned as soon as it reaches max_length tokens: it would be rejected anyway,
    so the kept trees have the distribution of LRA's draw-then-filter.
    """
    tokens: list[int] = []
    try:
        value = _draw(uniform, params, 1, tokens)
    except _TooLong:
        return None
    if not params.min_length < len(tokens) < params.max_length:
        return None
    return tokens, value


def generate(params: ListOpsParams, max_draws: int | None = None) -> dict[str, dict]:
    """The three splits as {split: {"tokens" [n, w] uint8, "lengths" [n], "labels" [n]}}.

    Deterministic in `params` (including its seed): one numpy Generator seeded with
    `[seed, 15]` draws every tree in order; repeated expressions are skipped, so no expression
    is in two splits; the first num_train kept trees are the training split, then validation,
    then test. Tokens are right-padded with PAD to the longest kept expression. Raises
    RuntimeError when `max_draws` trees (default 2,000 per example asked) keep too few.
    """
    wanted = sum(params.split_sizes.values())
    max_draws = max(1000, 2000 * wanted) if max_draws is None else max_draws
    uniform = _Uniforms(np.random.default_rng([params.seed, 15]))
    seen: set[bytes] = set()
    kept: list[tuple[list[int], int]] = []
    draws = 0
    while len(kept) < wanted:
        if draws >= max_draws:
            raise RuntimeError(
                f"ListOps generator kept {len(kept)} of {wanted} expressions in {draws} draws; "
                f"widen the length window ({params.min_length}, {params.max_length}) or change "
                f"max_depth={params.max_depth} / max_args={params.max_args}"
            )
        draws += 1
        drawn = draw_expression(uniform, params)
        if drawn is None:
            continue
        key = bytes(drawn[0])
        if key in seen:
            continue
        seen.add(key)
        kept.append(drawn)
    splits, start = {}, 0
    for split, size in params.split_sizes.items():
        splits[split] = _pack(kept[start : start + size])
        start += size
    return splits


def _pack(examples: list[tuple[list[int], int]]) -> dict[str, np.ndarray]:
    lengths = np.array([len(tokens) for tokens, _ in examples], dtype=np.int32)
    width = int(lengths.max()) if len(examples) else 0
    tokens = np.full((len(examples), width), PAD, dtype=np.uint8)
    for row, (ids, _) in enumerate(examples):
        tokens[row, : len(ids)] = ids
    labels = np.array([value for _, value in examples], dtype=np.int32)
    return {"tokens": tokens, "lengths": lengths, "labels": labels}


def decode(ids) -> str:
    """Token ids back to the expression text (`[MAX 2 9 ]`), padding dropped."""
    return " ".join(VOCAB[int(i)] for i in ids if int(i) != PAD)


def encode(text: str) -> list[int]:
    """Expression text (space-separated tokens, no parentheses) to token ids."""
    try:
        return [TOKEN_IDS[token] for token in text.split()]
    except KeyError as error:
        raise ValueError(
            f"unknown ListOps token {error.args[0]!r}; valid: {', '.join(VOCAB[1:])}"
        ) from None
