"""Attention statistics of a ViT's heads: capture, mean attention distance, entropy, patterns, similarity."""
