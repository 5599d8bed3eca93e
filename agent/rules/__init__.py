"""The facility's rules as plain values: dataset templates, rates and token buckets, timetables.

Parsed and evaluated here, with no I/O and no state; the configuration models build on
them. Imports only ``agent.errors``.
"""
