"""The state store: table modules composed in one ``Tables``, one write transaction, watches.

Layout (imports point down):

- ``store.py``   ``StateStore``: holds the current ``Tables`` and the ``Watches`` registry, opens
  write transactions (``store.write(index)``), offers the read API, snapshot and restore.
- ``write.py``   ``WriteTxn``: the undo log (always on), index bumps, watches queued until commit.
- ``tables.py``  ``Tables``: one complete state: every table plus the index table.
- ``kv.py``, ``catalog.py``, ``sessions.py``, ``autopilot.py``: one table module each; rows,
  secondary indexes, reads (lock-free) and writes (taking the ``WriteTxn``).
- ``rows.py``    typed rows (msgspec structs): ``Node``, ``Service``, ``Check``, ``Session``; KV
  entries are ``kv.DirEntry``.  Rows carry no JSON: the HTTP layer renders them.  How to add a
  field: see ``rows.py``.
- ``sortedkeys.py`` ``SortedKeys``: the KV table's sorted key set in chunks (O(log n) inserts).
- ``txn.py``     ``/v1/txn`` operations over the tables, inside the command's transaction.
- ``watch.py``   ``Watch``, ``WatchSet`` (what a blocking query waits on) and ``Watches``.

Writing.  The FSM runs every command as ``with store.write(index) as tx: <table>.<op>(tx, ...)``.
Table code mutates rows only through ``tx`` (``tx.put``/``tx.pop``/``tx.add_member``/
``tx.discard_member``/``tx.insort``/``tx.record``) and stamps indexes with ``tx.bump(name)``;
any exception rolls everything back and no watch fires.  Rows are replaced, never mutated in
place, so a reader holding a row keeps a consistent object.

Reading.  Reads take an optional ``WatchSet``, register the watches of what they read
(``watches.table``/``key``/``prefix``) and return ``(index, rows)``.  No lock: the single
writer runs synchronously on the event loop.

Adding a table (ACL tokens, config entries, prepared queries, coordinates, KV history...):
1. a module ``state/<name>.py`` with a class taking ``tables: Tables`` in ``__init__`` and
   holding its rows (a dict keyed by ID) and any secondary indexes; writes take ``tx`` first
   and bump an index named after the table; reads take ``ws`` and call
   ``self._t.watches.table(ws, "<name>")``;
2. one attribute in ``Tables.__init__`` (``self.<name> = <Name>Table(self)``);
3. its rows in ``StateStore.snapshot``/``load`` under a new key (``load`` must accept a snapshot
   without the key: older snapshots do not have it), and a count in ``summary`` if
   ``snapshot inspect`` should show it;
4. a command type in ``structs.py`` and its handler in ``fsm.py``:
   ``def _apply_x(self, tx, c): return tx.tables.<name>.<op>(tx, ...)``.
Other tables are reachable in a write as ``self._t.<other>`` (same transaction, as in Consul's
memdb), e.g. a session destroy releasing KV locks.
"""
