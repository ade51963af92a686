// A plain TypeScript client for node: sign in, subscribe to board 1, print
// its cards whenever they change, and add a card.
//
//   npm run build && node build/client.js http://127.0.0.1:8080 ann "my first card"
//
// With --until TEXT it exits (status 0) once a card with that text is on
// the board: the quickstart's test runs it so.
import WebSocket from "ws";
import { BoardChannel } from "./rx/board.channels.js";
import type { WebSocketConstructor } from "./rx/rxgorm/index.js";

const args = process.argv.slice(2);
const untilAt = args.indexOf("--until");
const until = untilAt >= 0 ? args.splice(untilAt, 2)[1] : undefined;
const [base = "http://127.0.0.1:8080", name = "ann", text] = args;

const login = await fetch(`${base}/login`, { method: "POST", body: new URLSearchParams({ name }) });
if (!login.ok) throw new Error(`login: ${login.status} ${await login.text()}`);
const token = await login.text();

const board = new BoardChannel(
  { url: base.replace(/^http/, "ws") + "/rx", token, WebSocket: WebSocket as unknown as WebSocketConstructor },
  { boardId: "1" },
);
const timer = setTimeout(() => {
  console.error("quickstart client: timed out");
  process.exit(1);
}, 30_000);
board.subscribe((state) => {
  if (!state) return;
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
