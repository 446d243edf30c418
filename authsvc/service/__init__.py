"""The running service: state and background work around the pure rules.

``runtime`` is the composition root: it opens the store and builds the cache, audit log,
metrics and last-used recorder, and hands each part what it uses. ``token_service`` is the
one implementation of create / list / get / update / rotate / delete behind the admin API
and the CLI. ``reload`` swaps the configuration, ``propagation`` applies changes made
elsewhere to the cache, ``workers`` runs several processes on one listening socket.
"""
