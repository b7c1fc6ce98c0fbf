"""The model registry: which model revisions were deployed, their status, and every change (store, migrations,
history; SQLite under data/ by default, PostgreSQL through REGISTRY_URL)."""
