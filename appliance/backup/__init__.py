"""Backups of what cannot be re-made (config, secrets, certificates, registry, supervisor, Grafana, metrics) and their restore."""
