"""``python -m autograder.gradescope``: build the bundle (on the instructor's machine); run and supervise grading
(in the container).

    python -m autograder.gradescope build [--out build/gradescope]   -> autograder.zip (bundle.py)
    (in the container, run_autograder) python -m autograder.gradescope supervise   (supervisor.py)
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

from autograder.gradescope.results import VISIBILITIES
from autograder.gradescope.settings import GRADESCOPE_LIMITS, Settings
from autograder.gradescope.supervisor import ROOT, run, supervise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the Gradescope autograder.zip")
    b.add_argument("--out", default=None, help="output folder (default build/gradescope)")
    b.add_argument("--train-images", type=int, default=None, help="training images shipped (default: Part 4's)")
    b.add_argument("--allow-small-dataset", action="store_true",
                   help="ship a dataset with fewer images than the notebook's defaults (refused otherwise)")
    b.add_argument("--hidden-tests-visibility", default=Settings.hidden_visibility, choices=VISIBILITIES,
                   help="when students see the results of tests that are checked only when graded")
    b.add_argument("--notebook-timeout", type=int, default=GRADESCOPE_LIMITS.notebook_timeout)
    for name in ("run", "supervise"):
        p = sub.add_parser(name, help=f"{name} grading of /autograder/submission (inside the container)")
        p.add_argument("--root", default=str(ROOT))
    args = parser.parse_args(argv)
    if args.command == "build":
        from autograder.gradescope.bundle import build, default_out

        settings = Settings(hidden_visibility=args.hidden_tests_visibility,
                            limits=replace(GRADESCOPE_LIMITS, notebook_timeout=args.notebook_timeout))
        archive = build(Path(args.out) if args.out else default_out(), settings, train_images=args.train_images,
                        allow_small_dataset=args.allow_small_dataset)
        print(f"wrote {archive} ({archive.stat().st_size / 2**20:.1f} MiB); upload it as a Gradescope autograder")
        return 0
    if args.command == "run":
        run(Path(args.root))
        return 0
    return supervise(Path(args.root))



sys.exit(main())
