"""Credit insurers: the connector protocol (`base`), the Allianz Trade client
(`allianz_trade`), matching insurer buyers to customers (`matching`), covers and the daily
sync (`covers`, `sync_store`, `sync_runner`).

The wire contract (what mirrors the public API, what is assumed) is in `CONTRACT.md` next to
this file; its loopback simulator is `cobro.devkit.insurer`.
"""
