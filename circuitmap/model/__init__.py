"""The model: loading (embedded Gemma 3 270M or any HF causal LM), hook points, tokens and
batches, the hooked forward, and KV-cached greedy decoding."""
