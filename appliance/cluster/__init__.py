"""Several machines in one Ray cluster: node names, placement of models on named nodes, workers joining."""
