"""The customer's self-service page: signed links (`links`), what the page shows
(`statement`), the customer's actions (`actions`, on top of `cobro.dunning.collector`) and
the web routes (`pages`, mounted by `cobro.web.app` under /p/{token})."""
