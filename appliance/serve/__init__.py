"""The Ray Serve application: builder, the ingress and its gate (auth, checks, audit, metrics), health."""
