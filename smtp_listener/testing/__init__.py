"""Aids for the demo and the tests, shipped beside the code as `aiosmtpd.testing` is.

`zone_server` serves DNS zones on loopback, so authentication runs through
Canary's real resolver with no network; `demo_world` is the demo's cast of
companies, mail servers and six weeks of mail.
"""
