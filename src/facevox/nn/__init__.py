"""Generic layers shared by the models: RoPE, attention, norms, modulation, MLPs, embeddings."""
