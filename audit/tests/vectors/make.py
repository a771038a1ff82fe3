"""Makes golden.json: the audit chain's encoding, computed independently of
the Rust code (Python's json with sorted keys and no whitespace is RFC 8785
for what events hold: strings, integers, booleans, null, objects, arrays).

    python3 audit/tests/vectors/make.py > audit/tests/vectors/golden.json
"""
import hashlib
import json

# Each event as a database might hold it: payload and metadata as text
# with arbitrary key order and whitespace.
EVENTS = [
    {
        "position": 1,
        "stream_type": "InventoryBatch",
        "stream_id": "0190f3a1-7c2e-7d4a-9b1c-2f3e4d5c6b7a",
        "stream_version": 1,
        "event_type": "BatchReceived",
        "event_version": "1.0",
        "recorded_at": "2026-11-30T09:00:00.123456Z",
        "metadata": '{ "occurred_at": "2026-11-30T09:00:00+00:00",\n  "actor": "seller:ana@example.com", "event_id": "0190f3a1-7c2e-7d4a-9b1c-000000000001",\n "correlation_id": "0190f3a1-7c2e-7d4a-9b1c-0000000000c1" }',
        "payload": '{"sku":"APPLE-GALA","quantity":{"uom":"g","amount":250000},  "warehouse_id":"WH-NORTH", "expires_at":"2026-12-10T00:00:00Z", "procurement_cost": {"currency":"EUR","minor":41250}, "batch_id":"0190f3a1-7c2e-7d4a-9b1c-2f3e4d5c6b7a"}',
    },
    {
        "position": 2,
        "stream_type": "Order",
        "stream_id": "0190f3a1-7c2e-7d4a-9b1c-aaaaaaaaaaaa",
        "stream_version": 1,
        "event_type": "OrderPlaced",
        "event_version": "2.0",
        "recorded_at": "2026-11-30T09:00:01.000000Z",
        "metadata": '{"causation_id":"0190f3a1-7c2e-7d4a-9b1c-0000000000ff","actor":"customer:3f1c","correlation_id":"0190f3a1-7c2e-7d4a-9b1c-0000000000c2","event_id":"0190f3a1-7c2e-7d4a-9b1c-000000000002","occurred_at":"2026-11-30T09:00:01.5+00:00","idempotency_key":"k-1"}',
        "payload": '{"lines":[{"sku":"APPLE-GALA","quantity":{"amount":1500,"uom":"g"}},{"quantity":{"uom":"unit","amount":3},"sku":"LIME"}],"note":"Leave at the door — ring twice «bitte»","gift":false,"coupon":null}',
    },
    {
        "position": 4,
        "stream_type": "Order",
        "stream_id": "0190f3a1-7c2e-7d4a-9b1c-aaaaaaaaaaaa",
        "stream_version": 2,
        "event_type": "OrderCancelled",
        "event_version": "1.0",
        "recorded_at": "2026-11-30T09:05:00.000001Z",
        "metadata": '{"event_id":"0190f3a1-7c2e-7d4a-9b1c-000000000004","occurred_at":"2026-11-30T09:05:00+00:00","actor":"admin:root","correlation_id":"0190f3a1-7c2e-7d4a-9b1c-0000000000c2"}',
        "payload": '{"reason":"customer_request","note":"tab\\there, quote \\" and backslash \\\\","refund":{"minor":-0,"currency":"EUR"},"big":9007199254740991}',
    },
]


def document(e):
    return {
        "position": e["position"],
        "stream_type": e["stream_type"],
        "stream_id": e["stream_id"],
        "stream_version": e["stream_version"],
        "event_type": e["event_type"],
        "event_version": e["event_version"],
        "recorded_at": e["recorded_at"],
        "metadata": json.loads(e["metadata"]),
        "payload": json.loads(e["payload"]),
    }


def canonical(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


previous = bytes(32)
out = []
for e in EVENTS:
    c = canonical(document(e))
    h = hashlib.sha256(previous + c.encode("utf-8")).digest()
    out.append({**e, "canonical": c, "link": h.hex(), "previous_link": previous.hex()})
    previous = h
print(json.dumps(out, indent=2, ensure_ascii=False))
