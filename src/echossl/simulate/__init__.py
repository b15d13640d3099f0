"""The built-in simulator: one module per synthetic modality, writing real formats."""
