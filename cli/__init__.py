"""Canary's command line: one module per noun, composed in `cli.main`.

Commands are thin: open the home, call `data` and `canary`, render with
rich. Domain errors become one sentence on stderr and exit status 1.
"""
