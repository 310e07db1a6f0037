"""Secrets: the keyring that seals values at rest (keyring), the service behind the Secrets
API and the engine (service), sealed `_secrets` subtrees in stored documents (sealing), and
masking of resolved values in every view (masking)."""
