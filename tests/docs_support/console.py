"""Sybil parser for the `console` blocks of the docs: one example per `$ command`, with the output the doc shows.

A console block holds commands that start with `$ ` (a command may continue over several lines while a quote
is open or a line ends with a backslash); the lines after a command, up to the next `$ `, are its documented
output. A block whose output is rendered Markdown (a `--format markdown` table) keeps that output outside the
block, between `<!-- output -->` and `<!-- /output -->` right after it; it belongs to the block's last command.

Expected output is compared with doctest's ELLIPSIS rule: `...` matches any text, across lines too. Trailing
spaces and trailing blank lines are ignored on both sides. A command with no output shown must still exit 0, or
the status its comment names ("exits with status 2"); an output ending in the CLI's one-line error
("cnnzoo CMD: error: ...") means status 2.
"""

from __future__ import annotations

import doctest
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sybil import Document, Example, Region
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

MARKDOWN_OUTPUT = re.compile(r"\n*<!-- output -->\n(?P<body>.*?)<!-- /output -->", re.DOTALL)
EXIT_STATUS = re.compile(r"exits with status (\d+)")
CLI_ERROR = re.compile(r"cnnzoo [\w-]+: error: ")


@dataclass(frozen=True)
class Command:
    """One documented command: what to run, what the doc shows, and where that text sits in the doc."""

    line: str  # as written, without the leading "$ ", continuation lines included
    expected: str  # the documented output ("" when the doc shows none)
    output_span: tuple[int, int]  # character range of the expected output in the document (for rewriting)
    markdown: bool  # the output is rendered Markdown after the block

    @property
    def code(self) -> str:
        return split_comment(self.line)[0].rstrip()

    @property
    def comment(self) -> str:
        return split_comment(self.line)[1]

    @property
    def exit_status(self) -> int:
        found = EXIT_STATUS.search(self.comment)
        if found:
            return int(found.group(1))
        # the CLI prints an error the user can fix as one "cnnzoo CMD: error: ..." line and exits with 2
        return 2 if CLI_ERROR.match(normalise(self.expected).split("\n")[-1]) else 0


def split_comment(line: str) -> tuple[str, str]:
    """`cmd args  # note` -> ("cmd args  ", "# note"); a `#` inside quotes or inside a word is not a comment."""
    quote, i = None, 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and quote != "'":
            i += 2  # an escaped character never opens, closes or comments
            continue
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i:]
        i += 1
    return line, ""


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on in the next line
        return False
    return True


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).rstrip("\n")


def output_matches(expected: str, actual: str) -> bool:
    want, got = normalise(expected) + "\n", normalise(actual) + "\n"
    return doctest.OutputChecker().check_output(want, got, doctest.ELLIPSIS)


def merge_for_update(expected: str, actual: str) -> str:
    """The new documented output: the actual one, keeping each `...` line of the old one that still matches."""
    old, new = normalise(expected).splitlines(), normalise(actual).splitlines()
    if "..." not in expected or len(old) != len(new):
        return normalise(actual)
    return "\n".join(o if "..." in o and output_matches(o, n) else n for o, n in zip(old, new, strict=True))


class ConsoleParser:
    """Yields one sybil Region per `$ ` command of every ```console block; `evaluator` runs a `Command`."""

    def __init__(self, evaluator: Callable[[Example], str | None]) -> None:
        self.lexer = FencedCodeBlockLexer("console")
        self.evaluator = evaluator

    def __call__(self, document: Document) -> Iterable[Region]:
        for block in self.lexer(document):
            source = block.lexemes["source"]
            base = block.start + source.offset
            commands = list(self._commands(source, base))
            after = MARKDOWN_OUTPUT.match(document.text, block.end)
            if after and commands:
                start, end, last = commands[-1]
                if last.expected:
                    raise ValueError(f"{document.path}: output both inside and after the block at {start}")
                span = after.span("body")
                commands[-1] = (start, after.end(), Command(last.line, after.group("body"), span, True))
            for start, end, command in commands:
                yield Region(start, end, parsed=command, evaluator=self.evaluator)

    @staticmethod
    def _commands(source: str, base: int) -> Iterable[tuple[int, int, Command]]:
        lines = source.splitlines(keepends=True)
        offsets = [sum(len(x) for x in lines[:i]) for i in range(len(lines) + 1)]
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                raise ValueError(f"console block: output with no command before it: {lines[i]!r}")
            start, text = i, lines[i][2:].rstrip("\n")
            while not _complete(text) and i + 1 < len(lines):
                i += 1
                text += "\n" + lines[i].rstrip("\n")
            i += 1
            out_start = i
            while i < len(lines) and not lines[i].startswith("$ "):
                i += 1
            span = (base + offsets[out_start], base + offsets[i])
            expected = "".join(lines[out_start:i])
            yield base + offsets[start], base + offsets[i], Command(text, expected, span, False)
