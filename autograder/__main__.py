"""Instructor commands.

    python -m autograder release              regenerate release/ from assignment/
    python -m autograder grade SUBMISSIONS    autograde a folder or LMS zip of notebooks
"""
import sys

from . import cli

if __name__ == "__main__":
    sys.exit(cli.main())
