// The Node comparison for router:handle: @octokit/webhooks' verifyAndReceive on the same bytes.
//
//   node bench/octokit_bench.mjs FILE SECRET [ITERATIONS]   alone: prints events/s
//   node bench/octokit_bench.mjs FILE SECRET --serve        driven by bench/router_bench.lua
//
// verifyAndReceive({ id, name, signature, payload }) checks "sha256=" + the hex HMAC-SHA256 of
// the payload string under SECRET, parses the JSON and runs the handlers registered for the
// event: the same work as router:handle (signature, decode, dispatch to one handler). Octokit
// only knows GitHub's event names, so the delivery is named "installation" and the handler is
// registered for "installation.created": the payload's "action" is "created", so octokit picks
// it the way it picks "<event>.<action>" handlers for GitHub. Every call is awaited in turn, as
// a server handling one delivery at a time would.
//
// --serve: after an untimed warm-up and a check, prints "ready <octokit version> <node version>
// <signature hex>", then reads counts from standard input, one a line: for each count N it runs
// N deliveries, timed with process.hrtime, and prints "<deliveries> <seconds>". A count of 0
// or the end of input prints "count <handler calls since ready>" and ends. Anything that
// goes wrong prints "fail <reason>" and exits with status 1. Lines are written synchronously on
// file descriptor 1 (a FIFO read by router_bench.lua).
import { createHmac } from "node:crypto";
import { readFileSync, writeSync } from "node:fs";
import { createInterface } from "node:readline";

const WARMUP = 5000;
const STARTUP_LIMIT_MS = 60000;
const EVENT_NAME = "installation";
const HANDLER_NAME = "installation.created";

function say(line) {
  writeSync(1, line + "\n");
}

function fail(reason) {
  say("fail " + String(reason).replace(/\s+/g, " "));
  process.exit(1);
}

const [file, secret, mode] = process.argv.slice(2);
if (!file || !secret) {
  process.stderr.write("usage: octokit_bench.mjs FILE SECRET [ITERATIONS | --serve]\n");
  process.exit(2);
}

// Bounds the start (the import, the warm-up): the driver waits for our first line.
const watchdog = setTimeout(() => fail(`not ready after ${STARTUP_LIMIT_MS} ms`), STARTUP_LIMIT_MS);

let Webhooks, version;
try {
  ({ Webhooks } = await import("@octokit/webhooks"));
  const pkg = new URL("./node_modules/@octokit/webhooks/package.json", import.meta.url);
  version = JSON.parse(readFileSync(pkg, "utf8")).version;
} catch (err) {
  fail(`cannot load @octokit/webhooks (run npm install in bench/): ${err.message}`);
}

const payload = readFileSync(file, "utf8");
const id = String(JSON.parse(payload).id);
const hex = createHmac("sha256", secret).update(payload).digest("hex");
const delivery = { id, name: EVENT_NAME, signature: "sha256=" + hex, payload };

const webhooks = new Webhooks({ secret });
let handled = 0;
webhooks.on(HANDLER_NAME, () => {
  handled += 1;
});

async function run(n) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await webhooks.verifyAndReceive(delivery);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

try {
  await run(WARMUP);
  // A wrong signature must be refused, or the timings mean nothing.
  const refused = await webhooks
    .verifyAndReceive({ ...delivery, signature: "sha256=" + "0".repeat(64) })
    .then(() => false, () => true);
  if (!refused) fail("verifyAndReceive accepted a wrong signature");
} catch (err) {
  fail(`verifyAndReceive failed: ${err.message}`);
}
if (handled !== WARMUP) fail(`the handler ran ${handled} times for ${WARMUP} deliveries`);
clearTimeout(watchdog);

if (mode !== "--serve") {
  const n = Math.max(1, Number.parseInt(mode ?? "100000", 10) || 100000);
  const seconds = await run(n);
  if (handled !== WARMUP + n) fail(`the handler ran ${handled - WARMUP} times for ${n} deliveries`);
  say(`@octokit/webhooks ${version} verifyAndReceive on node ${process.version}: ` +
    `${Math.round(n / seconds)} events/s (${n} in ${seconds.toFixed(2)} s, ${payload.length} bytes)`);
  process.exit(0);
}

handled = 0;
say(`ready ${version} ${process.version} ${hex}`);
const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of input) {
  const n = Number.parseInt(line, 10);
  if (!(n >= 0)) fail(`expected a count, got "${line}"`);
  if (n === 0) break;
  let seconds;
  try {
    seconds = await run(n);
  } catch (err) {
    fail(`verifyAndReceive failed: ${err.message}`);
  }
  say(`${n} ${seconds.toFixed(9)}`);
}
say(`count ${handled}`);
process.exit(0);
