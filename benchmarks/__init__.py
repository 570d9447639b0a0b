"""`make bench`: speed and memory figures of the assignment at full CINIC-10 size (not tests)."""
