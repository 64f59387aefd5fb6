// HTTP API: GET / and GET /hello/<name> answer JSON, GET /healthz answers ok.
const http = require("http");
const greeting = require("./greeting");

const PORT = Number(process.env.PORT || 3000);

function reply(res, status, body) {
  const data = JSON.stringify(body) + "\n";
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

http
  .createServer((req, res) => {
    if (req.url === "/healthz") return reply(res, 200, { status: "ok" });
    if (req.url === "/" || req.url.startsWith("/hello/")) {
      const name = req.url.replace(/^\/hello\//, "").replace(/\/+$/, "") || "world";
      return reply(res, 200, greeting(req.url === "/" ? "world" : name));
    }
    return reply(res, 404, { error: `no route ${req.url}` });
  })
  .listen(PORT, () => console.log(`node-web listening on :${PORT}`));
