"""Backbones and heads, built by name from presets."""
