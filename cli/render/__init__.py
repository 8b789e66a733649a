"""Renderers: pure functions from a report (or a letter's content) to text.

`terminal` draws rich tables, `html` a self-contained page, `markdown`,
`csv` and `letter` plain text. None of them reads the database, the
network or the clock; the command modules call them with what a service
returned.
"""
