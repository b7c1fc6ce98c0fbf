"""Model lifecycle: what a model's files must be before it loads (manifests, integrity), and recording each
deploy in the registry; planning and applying changes (deploy, promote, roll back) come here next."""
