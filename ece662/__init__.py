"""Helpers for the ECE 662 pruning assignment: CINIC-10 data, the course CNN, evaluation and checks."""
