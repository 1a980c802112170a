"""The ``cnnzoo`` command line.

Each subcommand lives in its own module under :mod:`cnnzoo.commands` and exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this file only discovers and dispatches them, so
adding a command never touches a shared file. Command modules import torch lazily (inside ``run``) to keep
``cnnzoo --help`` fast.

Errors: argparse's usage errors, :class:`cnnzoo.errors.CnnzooError` and OS errors (missing files, full disk)
exit with code 2 and a one-line message; anything else is a bug and exits 1, still on one line;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import CnnzooError


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line with a hint, exit 2 (argparse's default prints the whole usage first).
    Subcommand parsers inherit this class from the top-level one."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnzoo",
        description="The classic CNNs (LeNet-5, AlexNet, VGG, ResNet, 1x1 convs), faithful to the papers.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the subcommand's parser, so the hint points at its --help
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}"[:200])
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CnnzooError as e:
        if args.debug:
            raise
        prefix = f"cnnzoo {args.command}: error: "  # a caret line under a layer string stays under its token
        print(prefix + str(e).replace("\n", "\n" + " " * len(prefix)), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"cnnzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnzoo summary vgg16 | head`
        return 0
    except OSError as e:  # a path that does not exist, is not readable, a full disk…
        if args.debug:
            raise
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"cnnzoo {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug of ours: still one line, with the way to see more
        if args.debug:
            raise
        print(
            f"cnnzoo {args.command}: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
