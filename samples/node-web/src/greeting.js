// What the API says. Edit this file while `devloop dev` runs: it is synced, then the server restarts.
const MESSAGE = "hello from node-web";

module.exports = (name) => ({ service: "node-web", message: MESSAGE, name });
