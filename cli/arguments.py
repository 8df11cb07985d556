"""What the commands share about their arguments: contract ids as argparse types, and
contract validation errors in the words of the command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pydantic import ValidationError


def argument_error(error: ValidationError, arguments: dict[str, str]) -> str:
    """A contract validation error in the words of the command line: each field's argument."""
    parts = []
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        parts.append(f"{arguments[field]}: {message}" if field in arguments else message)
    return "; ".join(parts)


def shown(text: str) -> str:
    """A value as an error message quotes it: in full if short, else by its length."""
    return repr(text) if len(text) <= 40 else f"{len(text)} characters"


def contract_id(example: str) -> Callable[[str], str]:
    """An argparse type for an id as the contract spells it (`shared.contract.Id`); argparse
    names the argument when a value is not one, and the message shows `example`."""
    from pydantic import TypeAdapter

    from shared.contract import Id

    ids = TypeAdapter(Id)

    def parse(text: str) -> str:
        try:
            return ids.validate_python(text)
        except ValidationError:
            raise argparse.ArgumentTypeError(
                f"expected an id of 1-64 letters, digits, '.', '_', ':' or '-' that starts with "
                f"a letter or digit, e.g. {example}; got {text!r}"
            ) from None

    return parse
