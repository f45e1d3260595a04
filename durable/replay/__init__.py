"""The replay engine: runs a workflow against its recorded history. No I/O of its own."""
