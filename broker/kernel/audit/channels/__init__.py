"""Forwarding channels for audit events: syslog (RFC 5424), signed HTTP webhooks, NATS JetStream."""
