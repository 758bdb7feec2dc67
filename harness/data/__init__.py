"""Dataset sources and the one on-disk format they are all converted to."""
