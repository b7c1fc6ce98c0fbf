"""The supervisor daemon: watchdog, scheduler, jobs (arrives with the supervisor issue)."""
