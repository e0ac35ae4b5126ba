"""The one parser of variant strings, shared by trainer configs and sweep configs.

A variant string is the text after `:` in `--config=FILE.py:VARIANT` or `--sweep=FILE.py:VARIANT`:

    N=64,d_m=8,k_c=16            three fields
    budgets=[1e3,1e4],seeds=0    a list in brackets (commas inside brackets belong to the value)
    budgets=1e3,1e4,steps=200    an item without `=` continues the previous key's value as a
                                 list: budgets=[1e3, 1e4]

Values are Python literals (`1e3`, `[0, 1]`, `True`, `'x'`), else plain text (`[lstm,gru]` is a
list of two strings). `coerce` then checks each value against the type of the field it sets (an
int field takes `200` or `2e3`, not `2.5` or `abc`) and raises `VariantError` naming the key, the
value and what is valid.
"""

from __future__ import annotations

import ast
from typing import Any


class VariantError(ValueError):
    """A variant item that is malformed, names no field, or has a value of the wrong type."""


def split_items(arg: str | None) -> list[str]:
    """The comma-separated items of `arg`, keeping commas inside brackets or quotes."""
    items, depth, quote, current = [], 0, "", ""
    for char in arg or "":
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0 and not quote:
            items.append(current.strip())
            current = ""
        else:
            current += char
    items.append(current.strip())
    return [item for item in items if item]


def parse_literal(text: str) -> Any:
    """`text` as a Python literal, else `text` itself (so `x` and `'x'` are both the string x).

    A bracketed list of words is a list of strings: `[lstm,gru]` is `['lstm', 'gru']`.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        if len(text) >= 2 and text[0] + text[-1] in ("[]", "()"):
            return [parse_literal(item) for item in split_items(text[1:-1])]
        return text


def parse_variant(arg: str | None, *, what: str = "variant") -> dict[str, tuple[str, Any]]:
    """`key -> (text, value)` for each item of `arg` (see the module docstring for the rule).

    `text` is the value as written (string fields take it verbatim); continuation items make
    `value` a list. `what` names the variant in messages ("config variant", "sweep variant").

    Raises:
      VariantError: an item without `=` and no key before it, an empty key, a key given twice,
        or a continuation of a value that was already a bracketed list.
    """
    out: dict[str, tuple[str, Any]] = {}
    continued: set[str] = set()
    last: str | None = None
    for item in split_items(arg):
        if "=" not in item:
            if last is None:
                raise VariantError(
                    f"{what} item {item!r} is not key=value (in {arg!r}); write e.g. N=64,d_m=8"
                )
            text, value = out[last]
            if last not in continued and isinstance(value, (list, tuple)):
                raise VariantError(
                    f"{what} item {item!r} follows {last}={text}, which is already a list; "
                    f"put every element inside the brackets: {last}=[...]"
                )
            elements = list(value) if last in continued else [value]
            out[last] = (f"{text},{item}", [*elements, parse_literal(item)])
            continued.add(last)
            continue
        key, text = (s.strip() for s in item.split("=", 1))
        if not key:
            raise VariantError(f"{what} item {item!r} has no key before '=' (in {arg!r})")
        if key in out:
            raise VariantError(f"{what} key {key!r} is given twice (in {arg!r})")
        out[key] = (text, parse_literal(text))
        last = key
    return out


def _scalar(key: str, text: str, value: Any, kind: type, what: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise VariantError(f"{what} {key}={text}: {value!r} is not True or False")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise VariantError(
            f"{what} {key}={text}: {value!r} is not an integer (e.g. {key}=200, 2e3)"
        )
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise VariantError(f"{what} {key}={text}: {value!r} is not a number (e.g. {key}=1e-3)")
    if kind is str:
        if isinstance(value, str):
            return value
        return text.strip("'\"")
    return value


def coerce(key: str, text: str, value: Any, current: Any, kind: type | None, what: str) -> Any:
    """`value` converted to the type of the field it replaces (`current`, typed `kind`).

    Lists go into tuple fields (a scalar becomes a 1-tuple), elements typed like the field's
    first element; ints widen to floats; integral floats (`2e3`) narrow to ints.

    Raises:
      VariantError: the value does not fit the field's type (the message says what would).
    """
    kind = kind or type(current)
    if kind in (tuple, list):
        elements = list(value) if isinstance(value, (list, tuple)) else [value]
        element_kind = type(current[0]) if current else None
        if element_kind is None:
            return tuple(elements)
        return tuple(_scalar(key, text, e, element_kind, what) for e in elements)
    if isinstance(value, (list, tuple)) and kind in (bool, int, float):
        raise VariantError(f"{what} {key}={text}: takes one value, not a list")
    return _scalar(key, text, value, kind, what)


__all__ = ["VariantError", "coerce", "parse_literal", "parse_variant", "split_items"]
