// Outside checks of Freshledger's GraphQL endpoint (test-only):
//   node audit.mjs http://127.0.0.1:PORT [ORDER_ID ACCESS_TOKEN]
// 1. graphql-http's auditServer, the reference implementation of the
//    GraphQL-over-HTTP specification: every error and warning fails.
// 2. with ORDER_ID: the graphql-ws client subscribes to that order's
//    status from the start (signed in with ACCESS_TOKEN in the
//    connection_init payload) and must receive its first change.
import { auditServer } from 'graphql-http';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [base, orderId, token] = process.argv.slice(2);
if (!base) {
  console.error('usage: node audit.mjs http://HOST:PORT [ORDER_ID]');
  process.exit(2);
}
const results = await auditServer({ url: `${base}/graphql` });
const count = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const r of results) {
  count[r.status] += 1;
  if (r.status !== 'ok') console.log(`${r.status.toUpperCase()} ${r.id} ${r.name}: ${r.reason}`);
}
console.log(`graphql-http audit: ${count.ok} ok, ${count.error} errors, ${count.warn} warnings, ${count.notice} notices`);
let failed = count.error + count.warn > 0;

if (orderId) {
  const client = createClient({
    url: `${base.replace(/^http/, 'ws')}/graphql/ws`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : undefined,
  });
  try {
    const first = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no change within 10 s')), 10_000);
      const stop = client.subscribe(
        { query: 'subscription($id: String!) { orderStatus(orderId: $id, afterPosition: 0) { orderId eventType status } }', variables: { id: orderId } },
        {
          next: (v) => { clearTimeout(timer); stop(); resolve(v); },
          error: (e) => { clearTimeout(timer); reject(e); },
          complete: () => {},
        },
      );
    });
    const change = first?.data?.orderStatus;
    if (first.errors || change?.orderId !== orderId || change?.eventType !== 'OrderPlaced') {
      console.log(`graphql-ws: unexpected first change ${JSON.stringify(first)}`);
      failed = true;
    } else {
      console.log(`graphql-ws: subscribed, first change ${change.eventType} (${change.status})`);
    }
  } catch (e) {
    console.log(`graphql-ws: ${e?.message ?? JSON.stringify(e)}`);
    failed = true;
  } finally {
    await client.dispose();
  }
}
process.exit(failed ? 1 : 0);
