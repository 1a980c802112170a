"""The one validator for options: the command line, the Python API and a saved run config all pass through it.

An option's rule is declared once, next to its field::

    @dataclass
    class TrainConfig:
        epochs: int = option(10, Rule(int, 1, 10_000))  # why 10,000: see the field's comment

and then

- ``validate(config)`` checks every field of a dataclass instance (``fit(**options)``, ``--resume``'s
  config.json), raising :class:`OptionError` with one line naming the option, its value and its range;
- ``rule.argtype(flag)`` is the argparse ``type=`` for the same rule, so ``--epochs 0`` fails in the parser
  with the same sentence.

Bools must be real bools (JSON ``true``), ints real ints (not ``3.0``, not ``True``), floats finite.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import CnnzooError

__all__ = ["OptionError", "Rule", "option", "validate", "check"]


class OptionError(CnnzooError, ValueError):
    """An option outside its type or range."""


@dataclass(frozen=True)
class Rule:
    kind: type  # int, float, bool or str
    lo: float | None = None  # inclusive bounds (None: unbounded)
    hi: float | None = None
    choices: tuple[str, ...] = ()  # for str options
    optional: bool = False  # None is allowed (it means "choose for me")
    lo_open: bool = False  # lo itself excluded (a learning rate must be > 0)
    hi_open: bool = False

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '≥'} {_num(self.lo)}"
        hi = "" if self.hi is None else f"{'<' if self.hi_open else '≤'} {_num(self.hi)}"
        what = {int: "an integer", float: "a number", str: "text"}[self.kind]
        return " ".join(x for x in (what, lo, "and" if lo and hi else "", hi) if x)

    def check(self, name: str, value: Any, source: str = "") -> Any:
        """``value`` if it satisfies the rule, else :class:`OptionError` (ints are accepted for floats)."""
        where = f"{source}: " if source else ""

        def bad() -> OptionError:
            shown = repr(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            return OptionError(f"{where}{name} must be {self.describe()}, got {shown}")

        if value is None:
            if self.optional:
                return None
            raise bad()
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad()
            return value
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad()
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        if self.kind is int and not isinstance(value, int):
            raise bad()
        if isinstance(value, float) and not math.isfinite(value):
            raise bad()
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            raise bad()
        if self.hi is not None and (value > self.hi or (self.hi_open and value == self.hi)):
            raise bad()
        return float(value) if self.kind is float else value

    def argtype(self, flag: str):
        """An argparse ``type=``: parses the string, then checks the rule, with the same one-line message."""

        def parse(text: str):
            if self.kind is int:
                try:
                    value = int(text, 10)
                except ValueError:
                    raise argparse.ArgumentTypeError(
                        f"must be {self.describe()}, got {text[:40]!r}"
                    ) from None
            elif self.kind is float:
                try:
                    value = float(text)
                except ValueError:
                    raise argparse.ArgumentTypeError(
                        f"must be {self.describe()}, got {text[:40]!r}"
                    ) from None
            else:
                value = text
            try:
                return self.check(flag, value)
            except OptionError:
                raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text[:40]!r}") from None

        parse.__name__ = self.kind.__name__  # argparse names the type in its messages
        return parse


def option(default: Any, rule: Rule):
    """A dataclass field with its rule attached (read back by :func:`validate`)."""
    return field(default=default, metadata={"rule": rule})


def check(obj: Any, name: str, value: Any, source: str = "") -> Any:
    """Check one ``value`` for the field ``name`` of the dataclass ``obj`` (an instance or the class)."""
    for f in fields(obj):
        if f.name == name and "rule" in f.metadata:
            return f.metadata["rule"].check(name, value, source)
    return value


def validate(obj: Any, source: str = "") -> Any:
    """Check every field of the dataclass instance ``obj`` that has a rule; returns ``obj``."""
    for f in fields(obj):
        rule = f.metadata.get("rule")
        if rule is not None:
            rule.check(f.name, getattr(obj, f.name), source)
    return obj


def _num(v: float) -> str:
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:g}"
