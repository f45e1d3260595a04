"""The worker loop: claim, run by replay, record, finish."""
