// The plain JavaScript client of docs/QUICKSTART.md: no TypeScript build.
// makefrontend -js wrote ./rx (board.channels.js with its .d.ts, and the
// runtime as .js + .d.ts). It signs in, subscribes to board 1 through the
// framework-agnostic store, prints the cards whenever they change, and
// adds a card.
//
//   node js/client.js http://127.0.0.1:8080 ann "my first card"
//
// With --until TEXT it exits (status 0) once a card with that text is on
// the board: the quickstart's test runs it so.
import WebSocket from "ws";
import { BoardChannel } from "./rx/board.channels.js";
import { channelStore } from "./rx/rxgorm/index.js";

const args = process.argv.slice(2);
const untilAt = args.indexOf("--until");
const until = untilAt >= 0 ? args.splice(untilAt, 2)[1] : undefined;
const [base = "http://127.0.0.1:8080", name = "ann", text] = args;

const login = await fetch(`${base}/login`, { method: "POST", body: new URLSearchParams({ name }) });
if (!login.ok) throw new Error(`login: ${login.status} ${await login.text()}`);
const token = await login.text();

// In a browser, or node 22+, the WebSocket option is not needed.
const board = new BoardChannel({ url: base.replace(/^http/, "ws") + "/rx", token, WebSocket }, { boardId: "1" });
const store = channelStore(board); // subscribe(listener) and getState()
const timer = setTimeout(() => {
  console.error("quickstart client: timed out");
  process.exit(1);
}, 30_000);
let shown = null;
store.subscribe(({ state }) => {
  if (!state || state === shown) return; // the view also changes with status, runtime, presence
  shown = state;
  console.log(`${state.title}: ${state.cards.map((c) => (c.done ? "[x] " : "[ ] ") + c.text).join(", ")}`);
  if (until !== undefined && state.cards.some((c) => c.text === until)) {
    clearTimeout(timer);
    board.connection.close();
  }
});
if (text) {
  const card = await board.addCard(text);
  console.log(`added card ${card?.id}`);
}
