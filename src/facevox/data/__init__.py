"""Training data on disk: the latent shards ``facevox encode`` writes and the trainer reads."""
