"""Model compression helpers of ``task=compress_model``: layer plans (patterns, quantizers, pruning),
weights through frames with size accounting, and compression-aware fine-tuning."""
