"""Doctor: one check per file in checks/, a runner (concurrent, per-check timeouts) and a report."""
