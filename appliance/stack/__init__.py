"""The compose stack as `make up` sees it: what to render, which compose files, what changed, what to print."""
