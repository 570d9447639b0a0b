# nbgrader settings for this course (source: assignment/, release: release/).
# The values live in autograder/nbgrader_course.py so that the scripts and plain
# `nbgrader ...` commands run from this folder agree.
from autograder.nbgrader_course import base_config

c = get_config()  # noqa: F821 (provided by nbgrader)
c.merge(base_config())
