"""Command line: ``python -m emotools COMMAND ...``.

``run`` (the main job) lives here; every other command belongs to the module
that owns its concept and is imported only when used, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

#: command -> (module, one-line help). Each module exposes ``cli(argv) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("emotools.synth", "render the speech corpus with known emotion trajectories"),
    "samples": ("emotools.samples", "render tiny LibriSpeech / VoxCeleb1 / VoxCeleb2 samples in their real layouts"),
    "extract": ("emotools.features", "extract openSMILE features of a corpus into a feature store"),
    "predict": ("emotools.predict", "predict arousal and valence over time for audio files"),
}


def _run(argv: Sequence[str]) -> int:
    from . import notebooks, paths

    parser = argparse.ArgumentParser(
        prog="python -m emotools run",
        description="Execute every notebook in notebooks/ with papermill (the main job).",
    )
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this notebook (repeatable)")
    parser.add_argument("--smoke", action="store_true", help="tiny configuration (passes smoke=True)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="override a notebook parameter (repeatable)")
    parser.add_argument("--list", action="store_true", help="list notebooks and their parameters, then exit")
    parser.add_argument("--folder", type=Path, metavar="DIR", help="run the notebooks of DIR instead of notebooks/")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for nb in notebooks.select_notebooks(args.only, args.folder):
                print(nb.name)
                for p in notebooks.notebook_parameters(nb).values():
                    print(f"  {p.name}: {p.type} = {p.default!r}  # {p.help}")
            return 0
        outputs = notebooks.run_all(args.only, smoke=args.smoke, parameters=notebooks.parse_overrides(args.parameter),
                                    from_text=True, folder=args.folder)
    except notebooks.NotebookInterrupted as error:
        print(error, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before any notebook started", file=sys.stderr)
        return 130
    except notebooks.NotebookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for out in outputs:
        print(f"executed {paths.shown(out)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        lines = ["usage: python -m emotools COMMAND [options]", "", "commands:",
                 "  run        execute every notebook with papermill (the main job)"]
        lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("\n".join(lines))
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return _run(rest)
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; try: run, {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.cli(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
