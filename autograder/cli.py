"""Command line: ``python -m autograder {release,grade,formgrade,export,upload-feedback,handout,profile}``."""
import argparse
import sys

from autograder.course.canvas_feedback import FAILED, TOKEN_VARIABLE, upload_feedback
from autograder.course.export import export
from autograder.course.formgrade import serve
from autograder.course.handout import build as build_handout
from autograder.course.pipeline import grade
from autograder.course.release import release
from autograder.worker.job import Limits
from autograder.worker.sandbox import AUTO, OFF, ON


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="ECE 662 instructor tools",
                                     epilog="Gradescope bundle: python -m autograder.gradescope build")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="write the registry's points and Part 4 settings into assignment/, then "
                                  "regenerate release/ from it (nbgrader generate_assignment)")
    g = sub.add_parser("grade", help="autograde a folder of notebooks (<student_id>.ipynb) or an LMS zip")
    g.add_argument("submissions", help="folder or .zip (a Canvas bulk download is recognised by its file names)")
    g.add_argument("--out", default="grading", help="output folder (default: %(default)s)")
    g.add_argument("--roster", help="Canvas gradebook export (CSV): names, and a 'missing' row for who handed in "
                                    "nothing; remembered for export")
    g.add_argument("--workers", type=int, default=2, help="notebooks graded at once (default: %(default)s)")
    g.add_argument("--cell-timeout", type=int, default=Limits.cell_timeout,
                   help="CPU seconds per cell (default: %(default)s; the wall-clock backstop is "
                        f"{Limits.backstop_factor}x)")
    g.add_argument("--notebook-timeout", type=int, default=Limits.notebook_timeout,
                   help="CPU seconds per notebook (default: %(default)s; the wall-clock backstop is "
                        f"{Limits.backstop_factor}x)")
    g.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="memory cap per kernel (its cgroup; else its address space)")
    g.add_argument("--sandbox", choices=[AUTO, ON, OFF], default=AUTO,
                   help="bubblewrap sandbox for kernels: auto = when available (default)")
    g.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    g.add_argument("--only", metavar="ID", help="grade this student again (changed or not) and no one else; the "
                                                "others keep their results")
    g.add_argument("--name-pattern", help="regex matching each file's whole path inside the zip or folder, with a "
                                          "student_id group (optional: name, late, submission_id)")
    g.add_argument("--match", action="append", default=[], metavar="FILE=ID",
                   help="grade FILE (as the summary lists it) as student ID (Canvas: the roster's ID column); "
                        "repeatable, remembered in the output folder for later runs")
    f = sub.add_parser("formgrade", help="grade the inline questions by hand in nbgrader's formgrader")
    f.add_argument("out", help="the grading output folder")
    f.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    e = sub.add_parser("export", help="final grades: grades.csv, feedback and canvas.csv with manual scores")
    e.add_argument("out", help="the grading output folder")
    e.add_argument("--roster", help="Canvas gradebook export (CSV); default: the one given to grade")
    e.add_argument("--assignment", help='the Canvas column, "Name (id)", which the roster must have (default: the '
                                        'roster\'s column naming this assignment)')
    e.add_argument("--new-assignment", action="store_true",
                   help="let --assignment name a column the roster lacks: Canvas creates that assignment on import")
    e.add_argument("--zero-missing", action="store_true",
                   help="0 in canvas.csv for roster students who handed in nothing (default: left empty)")
    u = sub.add_parser("upload-feedback", help="attach each student's feedback page to a comment on their Canvas "
                                               f"submission (token: ${TOKEN_VARIABLE})")
    u.add_argument("out", help="the grading output folder")
    u.add_argument("--canvas-url", required=True, help="your Canvas, e.g. https://canvas.example.edu")
    u.add_argument("--course", required=True, help="the Canvas course id (in the course's address: /courses/ID)")
    u.add_argument("--assignment", help='the Canvas assignment: its id or its roster column "Name (id)" (default: '
                                        'the roster\'s column naming this assignment)')
    u.add_argument("--roster", help="Canvas gradebook export (CSV); default: the one given to grade or export")
    u.add_argument("--include-pending", action="store_true",
                   help="upload the pages of students whose total is not final too (questions pending, no grade)")
    u.add_argument("--dry-run", action="store_true", help="say what would be uploaded; upload nothing")
    h = sub.add_parser("handout", help="the zip students get: notebook, helpers, course models, requirements, README")
    h.add_argument("--out", help="output folder (default: build/handout/)")
    p = sub.add_parser("profile", help="the pruning profile of a course model, and whether the notebook's premises "
                                       "hold on it (make model runs it)")
    p.add_argument("--mode", choices=("torch", "tensorflow"), default="torch")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "release":
            print(f"wrote {release()}")
        elif args.command == "grade":
            results = grade(args.submissions, args.out, args.workers,
                            Limits(args.cell_timeout, args.notebook_timeout, args.memory_mb),
                            args.sandbox, args.force, args.name_pattern, roster=args.roster, match=args.match,
                            only=args.only)
            return 0 if results else 1
        elif args.command == "formgrade":
            serve(args.out, args.port)
        elif args.command == "profile":
            from autograder.course.profile import main as profile_main  # loads torch or TensorFlow

            return profile_main(["--mode", args.mode])
        elif args.command == "handout":
            print(f"wrote {build_handout(args.out)}")
        elif args.command == "upload-feedback":
            uploads = upload_feedback(args.out, args.canvas_url, args.course, args.assignment, args.include_pending,
                                      args.dry_run, args.roster)
            return 1 if any(u.action == FAILED for u in uploads) else 0
        else:
            export(args.out, args.roster, args.assignment, new_assignment=args.new_assignment,
                   zero_missing=args.zero_missing)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
