"""`gbhub` command line. Each subcommand lives beside the code it drives; this file only wires them.

Errors a user can cause (bad hex, missing key folder, unknown use case, a bad option) end in one
line on stderr and exit code 2; what the environment or the premises did (no connection, no answer,
a rejection) in one line and exit code 1; never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import decode
from .inputs import Failure, UsageError

# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`gbhub send: unrecognized arguments: --foo`), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand, or with `only="decode"` that one alone: `gbhub decode --batch` is timed as
    a whole process (`gbhub bench decode`), so it does not import the other subcommands' modules."""
    from gbhub import __version__

    p = Parser(prog="gbhub", description="GB smart-metering (SMETS2/GBCS) premises emulator")
    p.add_argument("--version", action="version", version=f"gbhub {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    p.commands = sub.choices  # name -> subcommand parser (main parses some of them intermixed)


    decode.register(sub)
    if only == "decode":
        return p
    from . import bench, client, control, firmware, fleet, load, pki, run, utrn

    # every subcommand module registers its own parser; listed here, so a broken one fails loudly
    bench.register(sub)
    pki.register(sub)
    run.register(sub)
    client.register(sub)
    control.register(sub)
    fleet.register(sub)
    load.register(sub)
    utrn.register(sub)
    firmware.register(sub)
    from . import dashboard, doctor, radio

    radio.register(sub)
    dashboard.register(sub)
    doctor.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv_given = argv
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only="decode" if argv[:1] == ["decode"] else None)
    command = parser.commands.get(argv[0]) if argv else None
    if command is not None and command.get_default("intermixed"):
        # options anywhere on the line: `gbhub send ECS22b --to esme start=...`
        args = command.parse_intermixed_args(argv[1:])
        args.command = argv[0]
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = int(args.func(args) or 0)
        if argv_given is None and getattr(args, "exit_without_teardown", False):
            # a subcommand that asked for it (`gbhub decode`), run as a program: its output is
            # written, and the interpreter's teardown of everything it made would take ~30 ms of a
            # ~0.45 s `decode --batch` run
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        return rc
    except UsageError as exc:
        print(f"gbhub {args.command}: {exc}", file=sys.stderr)
        return 2
    except Failure as exc:
        print(f"gbhub {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `gbhub decode --batch ... | head` closes the pipe early: not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as exc:  # the environment (a full disk, the counter file ...): one line, exit 1
        text = f"{exc.filename}: {exc.strerror}" if exc.strerror and exc.filename else exc
        print(f"gbhub {args.command}: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # run the package module, not this __main__ copy, so its exception classes are the ones raised
    from gbhub.tools.cli import main as _main

    sys.exit(_main())
