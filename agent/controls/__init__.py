"""How the facility steers a running agent: the acquisition guard, process priority, and the
local control channel (``harvest pause/resume/retry/rescan``).

May import ``config``, ``rules``, ``secrets`` and ``errors``.
"""
