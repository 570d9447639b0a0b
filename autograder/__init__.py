"""What course staff run, never shipped to students: ``python -m autograder`` (``cli.py``).

* ``course/``: a whole course: collecting submissions, the grading run, grades, feedback, formgrader, release;
* ``worker/``: one submission: the job, the contained kernel, the verifier, the typed result;
* ``gradescope/``: the same grading as a Gradescope autograder bundle;
* ``nbgrader_course.py``: the repository as an nbgrader course: its folders and the settings every course starts from;
* ``reference/``: the reference solution, one module per framework (the grader runs Part 4's recipe with it).
"""
