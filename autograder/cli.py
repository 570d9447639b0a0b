"""Command line: ``python -m autograder {release,grade}``."""
import argparse
import sys

from .collect import DEFAULT_NAME_PATTERN
from .course import generate_release
from .pipeline import Limits, grade


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="ECE 662 instructor tools",
                                     epilog="Gradescope bundle: python -m autograder.gradescope build")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="regenerate release/ from assignment/ (nbgrader generate_assignment)")
    g = sub.add_parser("grade", help="autograde a folder of notebooks (<student_id>.ipynb) or an LMS zip")
    g.add_argument("submissions", help="folder or .zip")
    g.add_argument("--out", default="grading", help="output folder (default: %(default)s)")
    g.add_argument("--workers", type=int, default=2, help="notebooks graded at once (default: %(default)s)")
    g.add_argument("--cell-timeout", type=int, default=Limits.cell_timeout, help="seconds per cell")
    g.add_argument("--notebook-timeout", type=int, default=Limits.notebook_timeout, help="seconds per notebook")
    g.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="address-space limit per kernel")
    g.add_argument("--sandbox", choices=["auto", "on", "off"], default="auto",
                   help="bubblewrap sandbox for kernels: auto = when available (default)")
    g.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    g.add_argument("--name-pattern", default=DEFAULT_NAME_PATTERN,
                   help="regex with student_id and file_id groups for file names in a zip")
    args = parser.parse_args(argv)

    if args.command == "release":
        print(f"wrote {generate_release()}")
        return 0
    try:
        results = grade(args.submissions, args.out, args.workers,
                        Limits(args.cell_timeout, args.notebook_timeout, args.memory_mb),
                        args.sandbox, args.force, args.name_pattern)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if results else 1
