"""The supervisor daemon: watchdog, scheduler, jobs (certificate renewal, log rotation, in-stack doctor)."""
