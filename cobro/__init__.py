"""Cobro: credit-risk and collections automation."""

__version__ = "0.1.0"
