"""The original demo's backend, rebuilt from its description (issue #24's baseline).

"Cache Me If You Can" (../shared/seed) describes a FastAPI + Uvicorn service doing
cache-aside in front of PostgreSQL: GET /products/{id} looks in Redis first, reads
PostgreSQL on a miss, stores the row with a TTL and answers the product with `source`
("cache" or "database") and `fetch_time_ms`. Its code is not published, so this is the
usual way to write that service, given every advantage the description allows: asyncio
clients (redis.asyncio, asyncpg) with connection pools, uvloop and httptools under
Uvicorn, no access log. `cargo xtask bench --original` runs it with two workers.
"""

import json
import os
import time

import asyncpg
import redis.asyncio as redis
from fastapi import FastAPI, HTTPException

CACHE_TTL_SECONDS = 3600

app = FastAPI(title="Cache Me If You Can (rebuilt baseline)")
state = {}


@app.on_event("startup")
async def startup():
    state["db"] = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=1, max_size=10
    )
    state["redis"] = redis.from_url(os.environ["REDIS_URL"], decode_responses=True)


@app.on_event("shutdown")
async def shutdown():
    await state["db"].close()
    await state["redis"].aclose()


def _row_to_product(row):
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "price": float(row["price"]) if row["price"] is not None else None,
        "category": row["category"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


@app.get("/products/{product_id}")
async def get_product(product_id: int):
    started = time.perf_counter()
    key = f"product:{product_id}"
    cached = await state["redis"].get(key)
    if cached is not None:
        product = json.loads(cached)
        product["source"] = "cache"
    else:
        row = await state["db"].fetchrow(
            "SELECT id, name, description, price, category, created_at, updated_at "
            "FROM products WHERE id = $1",
            product_id,
        )
        if row is None:
            raise HTTPException(status_code=404, detail="Product not found")
        product = _row_to_product(row)
        await state["redis"].setex(key, CACHE_TTL_SECONDS, json.dumps(product))
        product["source"] = "database"
    product["fetch_time_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return product


@app.get("/health")
async def health():
    await state["redis"].ping()
    await state["db"].fetchval("SELECT 1")
    return {"status": "healthy"}
