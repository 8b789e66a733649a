"""Canary's persistence: the home directory, SQLModel tables and queries.

This is the only package that touches the database or the home's files.
Queries are named functions that take a `Session`; nothing here keeps a
global engine or reads the environment.
"""
