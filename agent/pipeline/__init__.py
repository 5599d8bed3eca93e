"""The pipeline's stages, from a path seen to a file hashed and placed in its dataset.

``watch`` walks and watches the roots, ``filters`` decides what is harvested, ``settle``
waits until a file stops changing, ``datasets`` places files in datasets and closes them,
``hashing`` reads a file once with its identity checked, ``sparse`` finds its data ranges.
May import ``journal``, ``extract``, ``package``, ``config``, ``rules``, ``secrets``, ``errors``.
"""
