"""Example workflows; run a worker from the repository root to use them."""
