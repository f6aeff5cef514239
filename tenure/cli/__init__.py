"""The `tenure` command line (also `python -m tenure`): `ls`, `inspect`, `prune`, `verify`
and `simulate`.

Exit status: 0 on success, 1 when `verify` (or a listing) finds damaged data, 2 on bad
arguments or input (an object store that refuses or cannot be reached too), 3 when another
writer holds the root's lock (`prune`), 141 when the reader of the output went away (a
pipe into `head`), as for programs that SIGPIPE ends. The commands that read roots load jax
on first use, so `simulate` starts without it.

Examples:
    >>> main(["simulate", "--save", "FixedIntervalPolicy(10)", "--keep", "LatestN(1)",
    ...       "--steps", "21", "--step-seconds", "1", "--json"])  # doctest: +ELLIPSIS
    {...
    0
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tenure.cli import inspection, listing, pruning, simulate, verification
from tenure.cli.errors import BROKEN_PIPE, USAGE, CliError
from tenure.cli.simulate import LOSS_CURVES, parse_plot_path, parse_size, parse_steps
from tenure.retention import RetentionError

__all__ = ["LOSS_CURVES", "build_parser", "main", "parse_plot_path", "parse_size", "parse_steps"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets `run`, the function that carries it out.

    Examples:
        >>> build_parser().parse_args(["ls", "/ckpt", "--json"]).json
        True
    """
    parser = argparse.ArgumentParser(
        prog="tenure", description="Inspect, verify, prune and simulate JAX training checkpoints."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (listing, inspection, pruning, verification, simulate):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Examples:
        >>> main(["ls", "/nonexistent/root"])
        2
    """
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        # Nobody reads the rest: stop quietly, and keep the interpreter's final flush from
        # failing again on the same pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except CliError as error:
        print(f"tenure {args.command}: {error}", file=sys.stderr)
        return error.exit_status
    except RetentionError as error:
        print(f"tenure {args.command}: {error}", file=sys.stderr)
        return USAGE
    except OSError as error:
        from tenure.io import StorageError  # raised only where a root command loaded tenure.io

        if not isinstance(error, StorageError):
            raise
        print(f"tenure {args.command}: {error}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print(f"tenure {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
