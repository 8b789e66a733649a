"""Canary's SMTP listener: accept alias mail durably, refuse everything else.

The handler is thin: `canary.aliases` decides what a recipient is, `data`
stores, and the writer thread commits in groups before any 250 goes out.
Analysis runs beside it, off the reply path.
"""
