"""Instructor commands.

    python -m autograder release              regenerate release/ from assignment/
    python -m autograder grade SUBMISSIONS    autograde a folder or LMS zip of notebooks (--roster for Canvas)
    python -m autograder formgrade OUT        serve the grading output in formgrader for manual grading
    python -m autograder export OUT           final grades.csv, canvas.csv and feedback with manual scores
    python -m autograder upload-feedback OUT  each student's feedback page as a comment on their Canvas submission
    python -m autograder handout              the zip students get (build/handout/ece662-pruning.zip)
    python -m autograder profile [--mode M]   the pruning profile of a course model (make model runs it)

The Gradescope bundle has its own entry point: ``python -m autograder.gradescope build``.
"""
import sys

from autograder import cli

if __name__ == "__main__":
    sys.exit(cli.main())
