"""The soak: a fixed-rate stream of mixed /auth requests against a real ``authsvc serve``
while tokens change and the configuration is reloaded, every answer checked against the
pure rules (SECURITY: no 2xx for a request that the rules refuse, ever).

- ``workload``: the configuration variants and the requests sent;
- ``oracle``: what each answer must be, from the timeline of tokens and configurations;
- ``admin``: the admin API and CLI calls, reporting the token object;
- ``changes``: token changes (admin API and CLI) while the load runs;
- ``reloads``: configuration reloads (file rewrite + SIGHUP);
- ``harness``: the run itself (server, load, outage, memory), returning a ``report``;
- ``broken``: a deliberately wrong server, to show the soak catches one;
- ``__main__``: the longer command, ``scripts/soak``.
"""
