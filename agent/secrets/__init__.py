"""Secrets: where credentials come from, and the one filter that keeps them out of every text.

``credentials`` resolves a credential name (environment, systemd credentials, OS keyring);
``redact`` masks secrets and credential-shaped text in anything stored or printed.
Imports only ``agent.errors``: every other package may use it.
"""
