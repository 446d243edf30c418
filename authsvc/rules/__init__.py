"""The pure rules of authsvc: what a token is, what a request is, and whether it may pass.

Nothing here does I/O or touches aiohttp, asyncio, a store or a file (a test says so);
time comes in as ``now``. Read in the order a request meets them: ``request`` (describe
the request nginx forwarded), ``tokens`` (parse a presented secret), ``decision`` (allow or
deny a described request for a token record); ``ipfilter``, ``endpoints`` and ``durations``
are the compiled pieces of the configuration they match against; ``policy`` bounds what the
admin API and the CLI may issue.
"""
