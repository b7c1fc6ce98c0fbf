"""``python -m appliance``."""

from appliance.cli import run

if __name__ == "__main__":
    run()
