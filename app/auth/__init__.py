"""Authentication and access: applications, access keys, /api/token, roles and permissions."""
