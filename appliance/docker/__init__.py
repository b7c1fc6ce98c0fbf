"""The only code that imports the Docker SDK or runs `docker compose` (arrives with the supervisor issue)."""
