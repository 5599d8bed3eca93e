"""The ``harvest`` command line (``main``), ``harvest doctor``'s checks and ``harvest service``.

The top of the house: may import every other package; nothing imports it.
"""
