"""What operators and monitoring see: the status report and its views, the scan summary,
Prometheus metrics and their HTTP endpoint, systemd notifications, log setup.

Reads the journal (never writes it). May import every lower package: ``destinations``,
``pipeline``, ``controls``, ``journal``, ``extract``, ``package``, ``config``, ``rules``,
``secrets``, ``errors``; never ``engine`` or ``cli``.
"""
