"""Instructor tools: release generation, autograding pipeline and the end-to-end demo."""
