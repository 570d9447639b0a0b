"""``python -I -m autograder.worker JOB.json``: grade one submission (see ``autograder/worker/grade.py``)."""
import os
import sys

from autograder.worker.grade import main

code = main()
sys.stdout.flush()
# The result is saved: leave now, without waiting for threads a dead kernel's client may have left behind.
os._exit(code)
