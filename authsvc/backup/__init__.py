"""``authsvc backup DIR`` and ``authsvc restore DIR`` (SPEC §13, docs/operations.md): the
backup folder's manifest (:mod:`.manifest`), the re-application of the audit log after a
backup (:mod:`.replay`) and the two commands (:mod:`.commands`). The snapshots themselves
are the store's (:mod:`authsvc.store.snapshots`)."""
