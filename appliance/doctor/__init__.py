"""Doctor: one check per file in checks/, a runner and a report (arrives with the supervisor issue)."""
