"""Canary's listener and the services that talk to the world.

The aiosmtpd listener accepts alias mail durably and refuses everything
else: the handler is thin, `canary.aliases` decides what a recipient is,
and the store process (`writer`) commits in groups before any 250 goes
out. Beside it, off the reply path: analysis (`resolver`, `authenticate`,
`analysis`), and the evidence bundles that re-check signatures offline
(`evidence`). `testing` holds aids for the demo and the tests, the way
`aiosmtpd.testing` does.
"""
