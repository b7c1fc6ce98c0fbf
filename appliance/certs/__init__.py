"""Certificates: should_renew (pure), certbot runner, self-signed, inspection (arrives with the edge issue)."""
