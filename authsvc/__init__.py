"""authsvc: organization API tokens for APIs behind nginx ``auth_request``."""

__version__ = "0.1.0"
