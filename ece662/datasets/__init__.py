"""Getting the dataset: the official CINIC-10 download and an offline synthetic stand-in."""
