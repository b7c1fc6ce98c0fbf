"""The LLM appliance: vLLM engines behind Ray Serve, Nginx with TLS, and a supervisor daemon."""

__version__ = "0.1.0"
