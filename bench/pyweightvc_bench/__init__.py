"""Benchmark harness and the real trained weights it measures on."""
