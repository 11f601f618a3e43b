"""The structure count that refuses oversized bodies before they are parsed."""

import json
import random

import pytest

from yield_model import schemas
from yield_model.schemas import structural_tokens

_ALPHABET = ['"', "\\", "{", "[", ",", ":", "a", " ", "\n", "é"]


def _outside_strings(body: bytes) -> int:
    """The reference: ``{ [ , :`` outside strings, read character by character."""
    count, in_string, escaped = 0, False, False
    for char in body.decode():
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[,:":
            count += 1
    return count


def _value(rng: random.Random, depth: int = 0) -> object:
    def text() -> str:
        return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 30)))

    kind = rng.random()
    if kind < 0.3 and depth < 4:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind < 0.5 and depth < 4:
        return {text(): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return text() if kind < 0.8 else rng.random()


@pytest.mark.parametrize("seed", range(5))
def test_the_recount_equals_a_character_by_character_reading(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given JSON whose strings are full of quotes, backslashes and structure, and windows
    # of a few bytes, so that strings and escapes straddle them
    rng = random.Random(seed)
    for _ in range(300):
        # As orjson writes it: compact, UTF-8 (the model package's tests have no orjson).
        body = json.dumps(_value(rng), ensure_ascii=False, separators=(",", ":")).encode()
        monkeypatch.setattr(schemas, "_WINDOW", rng.randint(1, 20))
        # Then the count asked below any possible one (the recount) is the exact one
        assert structural_tokens(body, -1) == _outside_strings(body), body


def test_a_count_within_the_limit_is_the_raw_one() -> None:
    body = b'{"a": "x,y"}'
    assert structural_tokens(body, 10) == 3
    assert structural_tokens(body, 2) == 2
