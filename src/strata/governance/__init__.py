"""Governance: guardrails on a request's input and output (PII, secrets, terms, prompt injection,
guard models), their decisions recorded in the request record and the audit trail."""
