"""prometheus-client registry helpers and the DogStatsD client."""
