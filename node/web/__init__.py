"""The HTTP front door: ops endpoints (/metrics, /healthz, /readyz, /api/keys), and the
place for the Handle REST API, the scan page and the SNMS-compatible API."""
