"""prometheus-client registry helpers and the DogStatsD client (arrive with the serving and supervisor issues)."""
