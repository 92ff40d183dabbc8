"""The collection forecast: expected cash-in per week and currency, from each customer's own
payment behaviour, and its backtest against the cash that came in.

    from cobro.forecast.model import forecast, Portfolio, profile     # pure (the model)
    from cobro.forecast.backtest import score, baselines              # pure (the scoring)
    from cobro.forecast.run import collection_forecast, run_backtest  # against the database

The model is documented in `cobro.forecast.model`, the scoring in `cobro.forecast.backtest`.
"""
