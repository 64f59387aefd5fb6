import { label } from "./components/label.js";

export const message = "hello from vite v1";

document.querySelector("#app").textContent = `${label}: ${message}`;
