"""Outbound channels (email over SMTP, SMS through Twilio) and the local capture servers
that stand in for them in development and tests.

- `cobro.channels.email`: `send_email` (aiosmtplib), `SmtpConfig`, permanent/temporary errors
- `cobro.channels.sms`: `send_sms`/`send_sms_async` (twilio client), `sms_segments`
- `cobro.channels.capture`: `CaptureServers` (capture SMTP + Twilio-compatible API + inbox)
- `cobro.channels.capture_smtp` / `capture_sms`: the servers and their stores (reader API)
"""
