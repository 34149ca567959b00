"""The benchmark scenarios; each compares the bridge with a baseline from the same run."""
