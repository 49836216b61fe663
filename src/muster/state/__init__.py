"""The state store: tables, indexes and watches (see ``store.py``)."""
