"""Matching as pure functions over DataFrames: no I/O, so each rule can be tested and
benchmarked on its own."""
