"""What a graded notebook cell runs in the student's kernel: ``run_test(grade_id, globals())`` (``cells.py``).

``registry.py`` lists every graded test and its points (the one place for them), ``checks.py`` decides each one
from what the student's code produced, and ``evidence.py`` is the file format a graded kernel records and the
strict reader the grader uses.
"""
from .cells import run_test  # noqa: F401
