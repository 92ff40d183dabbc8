"""Everything that stands in for the outside world in `cobro dev` and the tests: the insurer
simulator (`insurer/`), the capture SMTP and Twilio-compatible SMS servers and their inbox,
embedded loopback HTTP servers, the dev stack and the demo data.

Nothing outside `cobro.devkit`, `cobro.cli` and the tests imports it.
"""
