"""Command line: ``python -m emotools COMMAND ...``.

``run`` (the main job) lives here; every other command belongs to the module
that owns its concept and is imported only when used, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

#: command -> (module, one-line help). Each module exposes ``cli(argv) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("emotools.synth", "render the speech corpus with known emotion trajectories"),
    "samples": ("emotools.samples", "render tiny LibriSpeech / VoxCeleb1 / VoxCeleb2 samples in their real layouts"),
    "extract": ("emotools.features", "extract openSMILE features of a corpus into a feature store"),
    "predict": ("emotools.predict", "predict arousal and valence over time for audio files"),
    "export": ("emotools.export", "export a predictor's models to ONNX (run them with predict --onnx)"),
    "original": ("emotools.original", "run the original project's protocol on a corpus, beside its published numbers"),
    "docs": ("emotools.docs", "fill the numbers in README.md and docs/ from the committed results files"),
    "report": ("emotools.report", "rebuild results/report/index.html: notebooks, tables, figures, run log, manifest"),
}


def _run(argv: Sequence[str]) -> int:
    from . import notebooks, paths, report
    from .errors import EmotoolsError

    parser = argparse.ArgumentParser(
        prog="python -m emotools run",
        description="Execute every notebook in notebooks/ with papermill (the main job).",
        epilog="--smoke gives each notebook its smoke preset (declared in its metadata; --list prints it) and "
               "-p overrides win over it: --smoke -p epochs 3 trains 3 epochs on the smoke corpus. Notebooks have "
               "no smoke parameter; papermill alone runs the defaults (pass the preset's values with -p).",
    )
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this notebook (repeatable)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny configuration: each notebook's smoke preset, under any -p overrides")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="override a notebook parameter (repeatable)")
    parser.add_argument("--list", action="store_true", help="list notebooks and their parameters, then exit")
    parser.add_argument("--folder", type=Path, metavar="DIR", help="run the notebooks of DIR instead of notebooks/")
    parser.add_argument("--no-progress", action="store_true", help="no per-notebook cell progress on stderr")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for nb in notebooks.select_notebooks(args.only, args.folder):
                print(nb.name)
                for p in notebooks.notebook_parameters(nb).values():
                    print(f"  {p.name}: {p.type} = {p.default!r}  # {p.help}")
                print(f"  smoke preset: {notebooks.smoke_preset(nb) or 'the defaults'}")
            return 0
        outputs = notebooks.run_all(args.only, smoke=args.smoke, parameters=notebooks.parse_overrides(args.parameter),
                                    from_text=True, folder=args.folder, progress=not args.no_progress)
    except notebooks.NotebookInterrupted as error:
        print(error, file=sys.stderr)
        report.after_run()  # what finished before the interruption, readable
        return 130
    except KeyboardInterrupt:
        print("interrupted before any notebook started", file=sys.stderr)
        return 130
    except EmotoolsError as error:
        print(f"error: {error}", file=sys.stderr)
        if getattr(error, "cell", None) is not None:  # a notebook failed in a cell: the report shows which
            report.after_run()
        return 1
    for out in outputs:
        print(f"executed {paths.shown(out)}")
    report.after_run()
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
    from .errors import EmotoolsError

    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.cli(rest) or 0)
    except EmotoolsError as error:  # every command's deliberate errors: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
