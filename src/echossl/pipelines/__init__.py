"""End-to-end workflows that tie data, methods, engine and evaluation together (one per paper)."""
