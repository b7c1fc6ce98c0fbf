"""Certificates: inspection, provided-file checks, self-signed issue, should_renew (pure), certbot renewal
with an atomic swap. ``CertError`` is the project error every module here raises on purpose."""
