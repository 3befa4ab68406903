"""API keys at rest: only hashes stored, in keys.json or the api_keys table, revocation seen on reload."""

from __future__ import annotations

from flightlog.schema.api_keys import KeyRing, KeyTable, hash_key, new_key


def test_keys_in_the_api_keys_table_for_a_server_backend(store):
    table = KeyTable(store)
    record, text = new_key("acme", "read", "dash")
    table.add(record)
    ring = KeyRing(table)
    ring.reload()
    assert ring.lookup(text).tenant == "acme"
    assert store.query("SELECT count() FROM api_keys WHERE hash = {h:String}", {"h": hash_key(text)}).scalar() == 1
    assert store.query("SELECT countIf(position(hash, 'flk_') > 0) FROM api_keys").scalar() == 0
    table.revoke(record.id)
    ring.reload()
    assert ring.lookup(text) is None
