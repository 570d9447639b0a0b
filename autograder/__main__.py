"""Instructor commands.

    python -m autograder release              regenerate release/ from assignment/
    python -m autograder grade SUBMISSIONS    autograde a folder or LMS zip of notebooks (--roster for Canvas)
    python -m autograder formgrade OUT        serve the grading output in formgrader for manual grading
    python -m autograder export OUT           final grades.csv, canvas.csv and feedback with manual scores

The Gradescope bundle has its own entry point: ``python -m autograder.gradescope build``.
"""
import sys

from autograder import cli

if __name__ == "__main__":
    sys.exit(cli.main())
