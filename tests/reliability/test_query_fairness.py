"""One tenant's slow queries cannot take the query threads from another tenant.

Before: ten concurrent slow queries of one tenant held every thread of the store pool and another
tenant's 16 ms search took 14 s. Now each tenant (and key) holds at most its share of query
slots across every query route, and a query past it waits a moment, then gets 429 with
Retry-After. Nothing here asserts a duration: only who was answered and who was refused.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from flightlog.query.slots import QuerySlots, TooManyQueries
from flightlog.query.slots_api import QUERY_SLOTS, STORE_THREADS
from flightlog.web.server import create_app

from tests.query.data import insert, make_line
from tests.security.conftest import bearer, make_key  # noqa: F401  (make_key: a fixture)

# 2.5 s of sleeping in the engine (25 rows × 0.1 s, one block: under the 3 s a block may sleep),
# so it holds its slot and thread without burning a core of this shared machine
SLOW_SQL = "SELECT sum(sleepEachRow(0.1)) FROM numbers(25)"
SHARE = 2


@pytest.fixture
def fair_settings(settings):
    return dataclasses.replace(
        settings, query_slots=4, query_slots_per_tenant=SHARE, query_slots_per_key=SHARE, query_slot_wait_ms=200
    )


@pytest.fixture
async def tenants(aiohttp_client, fair_settings, store, make_key):  # noqa: F811
    for tenant in ("alpha", "bravo"):
        insert(store, [make_line(tenant=tenant, message=f"{tenant} line {i}", build_id="b1") for i in range(5)])
    keys = {tenant: make_key(tenant, "read") for tenant in ("alpha", "bravo")}
    app = create_app(fair_settings, store=store)
    client = await aiohttp_client(app)
    return client, app, keys


async def _until(condition, limit: int = 400) -> None:
    """Yield to the server until `condition()` holds (bounded: a broken server fails, not hangs)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the condition never held")


async def _status(client, method: str, path: str, key: str, **kwargs) -> tuple[int, str, str | None]:
    async with client.request(method, path, headers=bearer(key) | kwargs.pop("headers", {}), **kwargs) as resp:
        return resp.status, await resp.text(), resp.headers.get("Retry-After")


async def test_ten_slow_queries_of_one_tenant_get_429_past_its_share_while_another_tenant_is_answered(tenants):
    client, app, keys = tenants
    slots = app[QUERY_SLOTS]
    alpha = [
        asyncio.create_task(_status(client, "POST", "/api/v1/sql", keys["alpha"], json={"sql": SLOW_SQL}))
        for _ in range(10)
    ]
    await _until(lambda: slots.by_tenant.get("alpha") == SHARE)
    # alpha's share is shared by all its routes: a search or a page of its own is past it too
    alpha_search = await _status(client, "GET", "/api/v1/search?q=&from=1d", keys["alpha"])
    alpha_page = await _status(client, "GET", "/search?q=&from=1d", keys["alpha"], headers={"Accept": "text/html"})
    # while alpha holds its whole share, bravo is answered on every kind of query route (one at
    # a time: bravo's own share is 2 slots too)
    bravo = [
        await _status(client, "GET", "/api/v1/search?q=&from=1d", keys["bravo"]),
        await _status(client, "GET", "/api/v1/histogram?q=&from=1d", keys["bravo"]),
        await _status(client, "GET", "/api/v1/builds/b1/trail", keys["bravo"]),
        await _status(client, "POST", "/api/v1/sql", keys["bravo"], json={"sql": "SELECT count() FROM logs"}),
        await _status(client, "GET", "/api/v1/search?q=&from=1d&format=ndjson", keys["bravo"]),
    ]
    answers = await asyncio.gather(*alpha)

    assert [status for status, _, _ in bravo] == [200] * 5, bravo
    assert all("bravo line" in text for _, text, _ in bravo[:1] + bravo[2:3] + bravo[4:])
    assert '"rows":[[5]]' in bravo[3][1]
    statuses = sorted(status for status, _, _ in answers)
    assert set(statuses) <= {200, 429}, answers
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1, statuses
    for status, text, retry_after in answers + [alpha_search, alpha_page]:
        if status == 429:
            assert retry_after == "1"
            assert "too many concurrent queries" in text
    assert alpha_search[0] == 429 and alpha_page[0] == 429
    assert slots.refused >= statuses.count(429) + 2


async def test_one_tenants_share_leaves_store_threads_for_the_others(tenants):
    _, app, _ = tenants
    slots = app[QUERY_SLOTS]
    assert slots.per_tenant < slots.total <= app[STORE_THREADS]._max_workers


async def test_a_freed_slot_goes_to_the_quietest_tenant_first():
    slots = QuerySlots(total=2, per_tenant=2, per_key=2, wait_seconds=5)
    held = [await slots.acquire("alpha", None), await slots.acquire("alpha", None)]
    alpha_waits = asyncio.create_task(slots.acquire("alpha", None))
    await asyncio.sleep(0)
    bravo_waits = asyncio.create_task(slots.acquire("bravo", None))
    await asyncio.sleep(0)
    held.pop()()  # alpha came first, but runs one query already; bravo none
    release_bravo = await asyncio.wait_for(bravo_waits, 1)
    assert not alpha_waits.done()
    assert dict(slots.by_tenant) == {"alpha": 1, "bravo": 1}
    release_bravo()
    (await asyncio.wait_for(alpha_waits, 1))()
    held.pop()()
    assert slots.running == 0 and not slots.by_tenant


async def test_a_key_holds_at_most_its_share_within_its_tenants():
    slots = QuerySlots(total=8, per_tenant=4, per_key=1, wait_seconds=0)
    first = await slots.acquire("alpha", "alpha/k1")
    with pytest.raises(TooManyQueries) as refused:
        await slots.acquire("alpha", "alpha/k1")
    assert refused.value.status == 429 and refused.value.headers() == {"Retry-After": "1"}
    assert "this key already runs 1 queries" in refused.value.message
    second = await slots.acquire("alpha", "alpha/k2")  # another key of the same tenant
    first(), second()
    assert slots.running == 0


async def test_a_waiter_that_gives_up_or_is_cancelled_holds_no_slot():
    slots = QuerySlots(total=1, per_tenant=1, per_key=1, wait_seconds=0.05)
    release = await slots.acquire("alpha", None)
    with pytest.raises(TooManyQueries):
        await slots.acquire("bravo", None)
    waiting = asyncio.create_task(slots.acquire("bravo", None))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release()
    release()  # twice is once
    assert slots.running == 0 and not slots.by_tenant
    (await slots.acquire("bravo", None))()
