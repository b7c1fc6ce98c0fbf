"""End-to-end tier: one Ray + Serve stack on the host, shared by every test in this package."""
