"""Network edges: twisted.web resources, the HTTPS client and TLS context factories."""
