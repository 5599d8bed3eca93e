"""The agent's state: the SQLite journal and the lock that gives it one writer.

``store`` is the journal (pipeline states and their transitions), ``reads`` the pipeline's
reads and ``report_reads`` the operator reports' reads (named methods, typed rows),
``connection`` opens it and runs transactions, ``schema`` holds the migrations and the
named joins (views), ``records`` the typed rows,
``names`` the archive-name table, ``lock`` the state-dir lock. SQL lives here and nowhere
else. May import ``config``, ``package``, ``secrets`` and ``errors``.
"""
