"""Remote-code modules copied into generated checkpoint folders (loaded via auto_map)."""
