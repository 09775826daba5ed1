"""Reusable Beam PTransforms for property-event streams.

Nothing in this package reads environment variables, pipeline options or the runner: values come
in through constructor arguments. Kafka itself is touched only by ``transforms.io``.
"""
