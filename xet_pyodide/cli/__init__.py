"""Command line: ``python -m xet_pyodide <command> ...`` (also installed as ``xet-pyodide``).

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a name, a help line, a function that
adds its arguments to an ``argparse`` sub-parser, and a function that runs it and returns the
exit status. To add one (``upload``, ``download``), append a ``Command`` to the list.
Errors a user can act on (:class:`XetError`, ``OSError``) become a one-line message on stderr
and exit status 1; argument errors exit with 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import XetError


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- hash


def _configure_hash(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to hash")
    parser.add_argument(
        "--json",
        action="store_true",
        help='print a JSON list of {"path", "hash", "size", "sha256"} objects',
    )


def _run_hash(args: argparse.Namespace) -> int:
    from ..core.filehash import hash_files

    results = hash_files(args.files)
    if args.json:
        json.dump([r.to_json() for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in results:
            sys.stdout.write(f"{r.hash.hex()} {r.size} {r.path}\n")
    return 0


# --------------------------------------------------------------------------- upload


def _configure_upload(parser: argparse.ArgumentParser) -> None:
    from .upload import configure

    configure(parser)


def _run_upload(args: argparse.Namespace) -> int:
    from .upload import run

    return run(args)


# --------------------------------------------------------------------------- download


def _configure_download(parser: argparse.ArgumentParser) -> None:
    from .download import configure

    configure(parser)


def _run_download(args: argparse.Namespace) -> int:
    from .download import run

    return run(args)


# --------------------------------------------------------------------------- hub


def _configure_hub(parser: argparse.ArgumentParser) -> None:
    from .hub import configure

    configure(parser)


def _run_hub(args: argparse.Namespace) -> int:
    from .hub import run

    return run(args)


COMMANDS: list[Command] = [
    Command(
        "hash",
        "print the Xet file hash and size of files (as hf_xet.hash_files computes them)",
        _configure_hash,
        _run_hash,
    ),
    Command(
        "upload",
        "upload files to a Xet CAS server (one finalize); prints hashes and dedup metrics as JSON",
        _configure_upload,
        _run_upload,
    ),
    Command(
        "download",
        "download a file (or --range START-END of it) by hash and size; prints stats as JSON",
        _configure_download,
        _run_download,
    ),
    Command(
        "hub",
        "Hugging Face Hub repositories: 'hub upload REPO PATH...' (one commit), "
        "'hub download REPO PATH OUT'; prints JSON",
        _configure_hub,
        _run_hub,
    ),
]


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xet-pyodide", description="Xet storage protocol tools (pure Python)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub_parser)
        sub_parser.set_defaults(_run=command.run)
    return parser


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args._run(args)
    except (XetError, OSError, ValueError) as error:  # ValueError: a bad size, URL, ...
        sys.stderr.write(f"xet-pyodide {args.command}: error: {_describe(error)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


__all__ = ["COMMANDS", "Command", "build_parser", "main"]
