"""Outbound channels: the real senders (email over SMTP with aiosmtplib, SMS through Twilio).

Import what you need from the module that defines it (`cobro.channels.email`,
`cobro.channels.sms`). Their local stand-ins (capture SMTP/SMS servers, inbox) live in
`cobro.devkit`.
"""
