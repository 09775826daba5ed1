"""The local market-data service: a seeded dataset behind an HTTP API with fault injection.

Run: ``python -m runners.marketdata --host 127.0.0.1 --port 8700`` (``GET /healthz`` answers when
it is up). See ``app.py`` for the endpoints and ``dataset.py`` for the data.
"""
