"""The Ray Serve application: builder, ingress layers, PII (arrives with the serving issue)."""
