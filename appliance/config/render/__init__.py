"""Rendering of service configuration (nginx, …) from the validated, typed configuration."""
