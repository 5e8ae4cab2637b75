"""Generated idnode.v1 protocol code (never edited by hand; regenerate with `make gen`)."""
