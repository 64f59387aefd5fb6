const http = require("http");
const fs = require("fs");
const path = require("path");
const { message } = require("./message");

const publicDir = path.join(__dirname, "..", "public");

http
  .createServer((req, res) => {
    if (req.url === "/") {
      res.end(message + "\n");
      return;
    }
    const file = path.join(publicDir, path.normalize(req.url));
    fs.readFile(file, (err, data) => {
      res.statusCode = err ? 404 : 200;
      res.end(err ? "not found\n" : data);
    });
  })
  .listen(3000, () => console.log("listening on 3000"));
