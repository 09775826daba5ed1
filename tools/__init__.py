"""Tools around the pipelines, run by people and tests: the seeded simulator and its oracle
(``simulate``), the dead-letter queue tool (``dlq``), the end-to-end demo (``demo``) and the
comparison of a run's outputs with the oracle (``verify``). They are entry points: they may use
the local stack (``runners``) and build pipelines; pipelines never import them."""
