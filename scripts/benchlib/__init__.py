"""Pieces of the serving benchmarks: the streaming client, the sides under test (raw vLLM, the Serve app on
the host, the compose stack) with their freezing and CPU accounting, and the report."""
