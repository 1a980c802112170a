"""The one validator for options: the command line, the Python API and a saved run config all pass through it.

An option's rule is declared once, next to its field::

    @dataclass
    class TrainConfig:
        epochs: int = option(10, Rule(int, 1, 10_000))  # why 10,000: see the field's comment

and then

- ``validate(config)`` checks every field of a dataclass instance (``fit(**options)``, ``--resume``'s
  config.json), raising :class:`OptionError` with one line naming the option, its value and its range;
- ``rule.argtype(flag)`` is the argparse ``type=`` for the same rule, so ``--epochs 0`` fails in the parser
  with the same sentence;
- ``add_options(parser, TrainConfig)`` makes a flag per field (``--batch-size`` for ``batch_size``) from its
  rule, default and ``help``: the command line never restates an option by hand.

Bools must be real bools (JSON ``true``), ints real ints (not ``3.0``, not ``True``), floats finite.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import CnnzooError

__all__ = ["OptionError", "Rule", "option", "validate", "check", "add_options", "flag_help"]


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


def option(
    default: Any,
    rule: Rule,
    *,
    help: str = "",
    default_text: str | None = None,
    nargs: int | str | None = None,
):
    """A dataclass field with its rule attached (read back by :func:`validate`) and what its command-line flag
    says (:func:`add_options`): ``help``, and ``default_text`` where the default is None ("choose for me") and
    needs words. ``nargs``: a tuple-valued option (2, "+"); ``rule`` is then each item's, and the rules between
    the items are the config's own (``validate_config``)."""
    meta = {
        "item_rule" if nargs else "rule": rule,
        "help": help,
        "default_text": default_text,
        "nargs": nargs,
    }
    return field(default=default, metadata=meta)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return " ".join(_shown(v) for v in value)
    return _num(value) if isinstance(value, (int, float)) else str(value)


def flag_help(f) -> str:
    """The help line of the dataclass field ``f``'s flag: what it does, its range and its default."""
    rule = f.metadata.get("rule") or f.metadata["item_rule"]
    shown = f.metadata.get("default_text") or _shown(f.default)
    what = f.metadata.get("help", "")
    limits = f"{rule.describe()}; " if rule.kind in (int, float) else ""
    return f"{what} ({limits}default {shown})".strip()


def add_options(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of the dataclass ``cls`` that has a rule (except ``skip``): ``--name-with-dashes``,
    parsed and checked by the field's rule, with :func:`flag_help`'s help. Every default is None, so a flag
    that is not given leaves the value to the next source (a saved config, a recipe, the dataclass)."""
    for f in fields(cls):
        rule = f.metadata.get("rule") or f.metadata.get("item_rule")
        if rule is None or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"help": flag_help(f).replace("%", "%%"), "default": None}
        if rule.kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif rule.choices:
            kw["choices"] = rule.choices
        else:
            kw["type"] = rule.argtype(flag)
        if f.metadata.get("nargs"):
            kw["nargs"] = f.metadata["nargs"]
            kw["metavar"] = "X"
        parser.add_argument(flag, **kw)


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
