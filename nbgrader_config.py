# nbgrader settings for this course (source: assignment/, release: release/), so that the scripts and plain
# `nbgrader ...` commands run from this folder agree: the course's base settings (autograder/nbgrader_course.py)
# and the grader's autograde steps (autograder/worker/autograde_config.py).
from autograder.nbgrader_course import base_config
from autograder.worker.autograde_config import autograde_preprocessors

c = get_config()  # noqa: F821 (provided by nbgrader)
c.merge(base_config())
c.Autograde.autograde_preprocessors = autograde_preprocessors()
