"""The HTTP side: the auth_request endpoint and the admin listener."""
