"""The local schema registry: the subset of Confluent Schema Registry's REST API that
confluent-kafka's ``SchemaRegistryClient`` and the pipeline (``--schema_registry_url``) use,
Avro only, in memory, seeded with the packaged catalog's schemas at their ids.

Run: ``python -m runners.schemaregistry --host 127.0.0.1 --port 8085`` (``GET /healthz`` answers
when it is up). See ``app.py`` for the endpoints.
"""
