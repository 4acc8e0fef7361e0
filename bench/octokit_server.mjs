// The Node side of the receiver benchmark: @octokit/webhooks' node middleware on loopback,
// verifying and dispatching the same signed bytes that nginx receives. Prints its port, then
// serves until killed. Benchmark-only: never a dependency of lua-thinkific.
import http from "node:http";
import { Webhooks, createNodeMiddleware } from "@octokit/webhooks";

const secret = process.argv[2];
let handled = 0;
const webhooks = new Webhooks({ secret });
webhooks.on("installation.created", () => { handled += 1; });
const middleware = createNodeMiddleware(webhooks, { path: "/hooks", log: { debug() {}, info() {}, warn() {}, error: console.error } });
const server = http.createServer((req, res) => {
  if (req.url === "/handled") {
    res.end(String(handled));
    return;
  }
  middleware(req, res);
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  console.log(server.address().port);
});
