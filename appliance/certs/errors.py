"""The certificate errors: one project error, with the file and what was expected vs found."""

from __future__ import annotations

from appliance.errors import ApplianceError


class CertError(ApplianceError):
    """A certificate or key is missing, unreadable, or does not pass a check. The message says which file,
    what was expected, what was found, and how to fix it."""
