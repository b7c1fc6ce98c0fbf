"""Integration tier: real nginx, prometheus, pebble, dockerd on loopback."""
