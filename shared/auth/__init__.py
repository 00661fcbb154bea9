"""Who is calling the HTTP APIs and what they may do (docs/security.md)."""
