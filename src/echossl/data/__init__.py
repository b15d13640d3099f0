"""Readers of real data formats, clip sampling, the decoded-frame cache and checks."""
