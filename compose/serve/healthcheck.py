#!/opt/venv/bin/python
"""Container healthcheck: GET http://127.0.0.1:PORT/PATH answers 200 (default /health/ready on 8000)."""

import sys
import urllib.request

path = sys.argv[1] if len(sys.argv) > 1 else "/health/ready"
port = sys.argv[2] if len(sys.argv) > 2 else "8000"
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as err:
    print(f"{path}: {err}", file=sys.stderr)
    sys.exit(1)
