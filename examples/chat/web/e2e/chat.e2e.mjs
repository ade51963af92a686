// Browser end-to-end test of the chat UI: three people in headless Debian
// Chromium (driven by playwright-core, which never downloads a browser)
// against a running chat server.
//
//   CHAT_URL=http://127.0.0.1:8080/ ARTIFACTS=/tmp/shots node e2e/chat.e2e.mjs
//
// The Go test examples/chat/e2e_test.go starts the server and runs this.
// Environment: CHAT_URL (required), ARTIFACTS (screenshots; default
// e2e-artifacts/ beside this folder), CHROMIUM (default /usr/bin/chromium).
// The layout-*.png screenshots are the ones examples/chat/README.md shows
// (copied to examples/chat/docs/).
//
// Every user's WebSocket goes through a Playwright WebSocket route, so that
// a step can cut a user off (offline: the socket closes and new ones are
// refused) or stall them silently (the server's frames stop arriving, the
// socket stays open), as a network would.
// Exits non-zero with the failed step and a screenshot of every page.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const base = process.env.CHAT_URL;
if (!base) {
  console.error("CHAT_URL is not set");
  process.exit(2);
}
const artifacts = process.env.ARTIFACTS || join(dirname(fileURLToPath(import.meta.url)), "..", "e2e-artifacts");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });

// Generous: the machine is small and the server runs under -race.
const TIMEOUT = 60_000;
const PASSWORD = "secret-pass";

let step = "start";
const pages = {};

function log(msg) {
  console.log(`e2e: ${msg}`);
}

/** Runs one named step. */
async function does(name, f) {
  step = name;
  const t0 = Date.now();
  await f();
  log(`ok  ${name} (${Date.now() - t0} ms)`);
}

async function shot(page, name) {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path });
  log(`screenshot ${path}`);
}

/** Polls f until it returns true. */
async function until(what, f, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await f()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The network of each user's browser: net[username].offline refuses
 * sockets, .stall drops every frame from the server (the client's still
 * arrive: a reply lost on the way back), .drop every frame both ways.
 * sockets are the routed ones open.
 */
const net = {};

async function routeSockets(context, username) {
  const n = (net[username] = { offline: false, stall: false, drop: false, sockets: new Set() });
  await context.routeWebSocket(/\/rx$/, (ws) => {
    if (n.offline) {
      ws.close({ code: 4000, reason: "offline" });
      return;
    }
    const server = ws.connectToServer();
    n.sockets.add(ws);
    ws.onMessage((m) => {
      if (!n.drop) server.send(m);
    });
    server.onMessage((m) => {
      if (!n.stall && !n.drop) ws.send(m);
    });
    // 1005 (no code) and 1006 (lost) cannot be sent: they close plainly.
    const how = (code, reason) => (code === 1000 || (code >= 3000 && code <= 4999) ? { code, reason } : {});
    ws.onClose((code, reason) => {
      n.sockets.delete(ws);
      server.close(how(code, reason));
    });
    server.onClose((code, reason) => {
      n.sockets.delete(ws);
      ws.close(how(code, reason));
    });
  });
}

/** Takes username's browser off the network: the sockets close, navigator.onLine is false. */
async function goOffline(page, username) {
  const n = net[username];
  n.offline = true;
  await page.context().setOffline(true);
  for (const ws of [...n.sockets]) ws.close({ code: 4000, reason: "offline" });
}

async function goOnline(page, username) {
  net[username].offline = false;
  await page.context().setOffline(false);
}

const visible = (locator) => locator.first().waitFor({ state: "visible", timeout: TIMEOUT });
const gone = (locator) => locator.first().waitFor({ state: "hidden", timeout: TIMEOUT });

async function register(page, username, displayName) {
  await page.goto(base);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill(displayName);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account", exact: true }).click();
  await visible(page.locator(".me").getByText(displayName));
  await visible(page.getByRole("tab", { name: /^Chats/ }));
}

const tab = (page, name) => page.getByRole("tab", { name: new RegExp(`^${name}`) }).click();
const messages = (page) => page.getByLabel("Messages", { exact: true });

/** Sends text in the open chat and waits until the server stored it (no pending mark left). */
async function send(page, text) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
  await until(`"${text}" to be sent`, async () => (await box.inputValue()) === "" && (await page.locator(".msg.pending").count()) === 0);
}

const banner = (page) => page.getByRole("alert", { name: "Connection" });
const dialog = (page) => page.getByRole("dialog");

/** Confirms the open confirm dialog with its button named name. */
async function confirmDialog(page, name) {
  await visible(dialog(page));
  await dialog(page).getByRole("button", { name, exact: true }).click();
  await gone(dialog(page));
}

/** The box of locator, or throws. */
async function box(locator, what) {
  const b = await locator.first().boundingBox();
  if (!b) throw new Error(`${what} has no box (hidden?)`);
  return b;
}

async function befriend(from, to, toName, fromName) {
  await tab(from, "Friends");
  await from.getByLabel("Friend's username").fill(to.username);
  await from.getByLabel("Invitation message").fill(`Hi ${toName}, it's ${fromName}`);
  await from.getByRole("button", { name: "Send invitation" }).click();
  // The request appears live on the other side, with a badge.
  await visible(to.page.getByRole("tab", { name: /^Requests\s*1/ }));
  await tab(to.page, "Requests");
  const req = to.page.getByRole("region", { name: "Friend requests" });
  await visible(req.getByText(`Hi ${toName}, it's ${fromName}`));
  return req;
}

async function main() {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // Root in a container: Chromium's sandbox needs user namespaces.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
    timeout: 60_000,
  });
  try {
    const people = {};
    for (const [username, name] of [
      ["alice", "Alice"],
      ["bob", "Bob"],
      ["carol", "Carol"],
    ]) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-GB", timezoneId: "UTC" });
      await routeSockets(context, username);
      const page = await context.newPage();
      page.setDefaultTimeout(TIMEOUT);
      page.on("pageerror", (err) => log(`${username}: page error: ${err.message}`));
      page.on("console", (m) => {
        // The sign-in screen's probe of /api/me answers 401: expected.
        if (m.type() === "error" && !m.text().includes("401")) log(`${username}: console: ${m.text()}`);
      });
      pages[username] = page;
      people[username] = { username, name, page };
    }
    const { alice, bob, carol } = pages;

    await does("sign-in screen", async () => {
      await alice.goto(base);
      await visible(alice.getByRole("button", { name: "Sign in", exact: true }));
      await shot(alice, "01-sign-in");
    });

    await does("three users register", async () => {
      await Promise.all([register(alice, "alice", "Alice"), register(bob, "bob", "Bob"), register(carol, "carol", "Carol")]);
    });

    await does("a random avatar at registration", async () => {
      const src = (page) => page.locator(".me img.avatar").getAttribute("src");
      const seeds = [];
      for (const [page, name] of [[alice, "alice"], [bob, "bob"], [carol, "carol"]]) {
        const m = new RegExp(`^/api/avatar/${name}\\.png\\?seed=([0-9a-f]{16})$`).exec(await src(page));
        if (!m) throw new Error(`${name}'s avatar is ${await src(page)}, not a random one`);
        seeds.push(m[1]);
      }
      if (new Set(seeds).size !== 3) throw new Error(`the three drew the same avatar: ${seeds}`);
    });

    await does("alice and bob become friends", async () => {
      const req = await befriend(alice, people.bob, "Bob", "Alice");
      await tab(alice, "Requests");
      await visible(alice.getByRole("region", { name: "Sent requests" }).getByText("Bob"));
      await shot(bob, "02-friend-request");
      await req.getByRole("button", { name: "Accept" }).click();
      await gone(req);
      // Alice's side follows without a reload: the request leaves, Bob
      // shows up among her friends.
      await gone(alice.getByRole("region", { name: "Sent requests" }));
      await tab(alice, "Friends");
      await visible(alice.getByRole("button", { name: "Message Bob" }));
    });

    await does("pick a new avatar; a friend sees it live", async () => {
      await bob.getByRole("button", { name: "Settings" }).click();
      await bob.getByRole("button", { name: "Change avatar" }).click();
      const picker = bob.getByRole("group", { name: "Pick an avatar" });
      const choice = picker.getByRole("button", { name: "Avatar 3" });
      const chosen = await choice.locator("img").getAttribute("src");
      await shot(bob, "02a-avatar-picker");
      await choice.click();
      await until("bob's avatar to change", async () => (await bob.locator(".me img.avatar").getAttribute("src")) === chosen);
      await gone(picker);
      const bobInAlices = alice.getByRole("listitem", { name: "Bob" }).locator("img.avatar");
      await until("alice to see bob's new avatar", async () => (await bobInAlices.getAttribute("src")) === chosen);
    });

    await does("bob and carol become friends", async () => {
      const req = await befriend(bob, people.carol, "Carol", "Bob");
      await req.getByRole("button", { name: "Accept" }).click();
      await tab(bob, "Friends");
      await visible(bob.getByRole("button", { name: "Message Carol" }));
    });

    await does("friend groups: create, move, rename", async () => {
      await alice.getByLabel("New friend group name").fill("Close friends");
      await alice.getByRole("form", { name: "New friend group" }).getByRole("button", { name: "Create" }).click();
      const group = alice.getByRole("region", { name: "Friend group Close friends" });
      await visible(group);
      await alice.getByLabel("Move Bob to group").selectOption({ label: "Close friends" });
      await visible(group.getByRole("button", { name: "Message Bob" }));
      await alice.getByRole("button", { name: "Rename Close friends" }).click();
      await group.getByLabel("Group name").fill("Besties");
      await group.getByRole("button", { name: "Save" }).click();
      await visible(alice.getByRole("region", { name: "Friend group Besties" }).getByRole("button", { name: "Message Bob" }));
      await shot(alice, "03-friends");
      // Unfriending asks first, in a modal dialog; Cancel keeps the friend.
      await alice.getByRole("button", { name: "Remove Bob" }).click();
      await visible(dialog(alice).getByRole("heading", { name: "Remove Bob from your friends?" }));
      await shot(alice, "03a-confirm-unfriend");
      await dialog(alice).getByRole("button", { name: "Cancel" }).click();
      await gone(dialog(alice));
      await visible(alice.getByRole("button", { name: "Message Bob" }));
    });

    await does("private chat: live messages, unread badge, read receipt", async () => {
      await alice.getByRole("button", { name: "Message Bob" }).click();
      await visible(alice.getByRole("heading", { name: "Bob" }));
      await send(alice, "Hi Bob! How are you?");
      // Bob is elsewhere: the chat list shows the message and a badge.
      await tab(bob, "Chats");
      await visible(bob.getByLabel("1 unread"));
      await visible(bob.locator(".chat-item").getByText("Hi Bob! How are you?"));
      await shot(bob, "04-unread-badge");
      await bob.locator(".chat-item", { hasText: "Alice" }).click();
      await visible(messages(bob).getByText("Hi Bob! How are you?"));
      await gone(bob.getByLabel("1 unread"));
      // Alice sees that Bob read it.
      await visible(alice.getByText("Seen by Bob"));
      await send(bob, "Great, thanks Alice!");
      await visible(messages(alice).getByText("Great, thanks Alice!"));
      await send(alice, "Let's plan the weekend.");
      await visible(messages(bob).getByText("Let's plan the weekend."));
      await shot(alice, "05-private-chat");
    });

    await does("presence: friends online, live", async () => {
      // Bob's friends: Alice and Carol are online (their homes are open).
      await tab(bob, "Friends");
      const aliceRow = bob.getByRole("listitem", { name: "Alice" });
      const carolRow = bob.getByRole("listitem", { name: "Carol" });
      await visible(aliceRow.getByRole("img", { name: "online" }));
      await visible(aliceRow.getByText("online", { exact: true }));
      await visible(carolRow.getByText("online", { exact: true }));
      // Carol closes the app: she goes offline on Bob's side, and comes
      // back online when she opens it again (her cookie signs her in).
      await carol.goto("about:blank");
      await visible(carolRow.getByText("offline", { exact: true }));
      await gone(carolRow.getByRole("img", { name: "online" }));
      await shot(bob, "05a-friends-online");
      await carol.goto(base);
      await visible(carol.getByRole("tab", { name: /^Chats/ }));
      await visible(carolRow.getByText("online", { exact: true }));
      // The chat list and the chat's header show Alice online too.
      await tab(bob, "Chats");
      await visible(bob.locator(".chat-item", { hasText: "Alice" }).getByRole("img", { name: "online" }));
      await visible(bob.locator(".chat-header").getByText("online", { exact: true }));
    });

    await does("edit a message: at once, live on the other side", async () => {
      const mine = alice.locator(".msg", { hasText: "Let's plan the weekend." });
      await mine.hover();
      await mine.getByRole("button", { name: "Edit message" }).click();
      const form = alice.getByRole("form", { name: "Edit message" });
      await form.getByLabel("Edited message").fill("Let's plan the long weekend.");
      await form.getByRole("button", { name: "Save" }).click();
      await visible(messages(alice).getByText("Let's plan the long weekend."));
      // Bob sees the new text, marked edited, and it was the latest
      // message: his chat list's preview follows.
      const edited = messages(bob).locator(".msg", { hasText: "Let's plan the long weekend." });
      await visible(edited.getByText("edited", { exact: true }));
      await gone(messages(bob).getByText("Let's plan the weekend.", { exact: true }));
      await visible(bob.locator(".chat-item", { hasText: "Alice" }).getByText("Let's plan the long weekend."));
      await visible(messages(alice).locator(".msg", { hasText: "Let's plan the long weekend." }).getByText("edited", { exact: true }));
      await shot(bob, "05b-edited");
    });

    await does("typing…: shown while the other types, gone on blur and send", async () => {
      const box = alice.getByLabel("Message", { exact: true });
      const indicator = bob.getByLabel("Typing").getByText("Alice is typing…");
      // Typing(true) goes out on a keystroke, at most every 2 s; keep
      // typing until Bob sees it.
      await box.pressSequentially("How about");
      let last = Date.now();
      await until("Bob to see Alice typing", async () => {
        if (Date.now() - last > 1500) {
          last = Date.now();
          await box.press("!");
        }
        return (await indicator.count()) > 0;
      });
      await shot(bob, "05c-typing");
      await box.blur();
      await gone(indicator);
      await box.fill("");
      await box.pressSequentially("The coast?");
      await visible(indicator);
      await box.press("Enter");
      await visible(messages(bob).getByText("The coast?"));
      await gone(indicator);
    });

    await does("chat list: a long URL is cut with an ellipsis; time and badge stay visible", async () => {
      // Bob looks elsewhere, so the message stays unread.
      await bob.getByRole("button", { name: "Settings" }).click();
      await tab(bob, "Chats");
      const url = `https://example.com/${"a-very-long-path-segment/".repeat(20)}?q=${"x".repeat(120)}`;
      await send(alice, url);
      const row = bob.locator(".chat-item", { hasText: "Alice" });
      await visible(row.getByLabel("1 unread"));
      const side = await box(bob.locator(".sidebar"), "the sidebar");
      const r = await box(row, "the chat row");
      const time = await box(row.locator(".time"), "the time");
      const badge = await box(row.getByLabel("1 unread"), "the badge");
      const right = side.x + side.width;
      if (r.width > side.width || time.x + time.width > right || badge.x + badge.width > right || time.width === 0) {
        throw new Error(`row ${JSON.stringify(r)}, time ${JSON.stringify(time)}, badge ${JSON.stringify(badge)} in a sidebar ${JSON.stringify(side)}`);
      }
      const cut = await row.locator(".preview").evaluate((el) => el.scrollWidth > el.clientWidth && getComputedStyle(el).textOverflow === "ellipsis");
      if (!cut) throw new Error("the preview is not cut with an ellipsis");
      await shot(bob, "05d-long-preview");
      await row.click();
      await visible(messages(bob).getByText(url));
    });

    await does("offline: a banner, pending messages, sent on reconnect once", async () => {
      await goOffline(bob, "bob");
      await until("bob's banner to say offline", async () => (await banner(bob).count()) > 0 && (await banner(bob).getAttribute("data-health")) === "offline");
      const box1 = bob.getByLabel("Message", { exact: true });
      await box1.fill("Sent while offline");
      await box1.press("Enter");
      const pending = bob.locator(".msg.pending", { hasText: "Sent while offline" });
      await visible(pending.getByRole("img", { name: "Sending" }));
      await shot(bob, "12-offline-pending");
      if ((await messages(alice).getByText("Sent while offline").count()) !== 0) throw new Error("alice got a message from an offline browser");
      const back = Date.now();
      await goOnline(bob, "bob");
      await gone(banner(bob));
      await visible(messages(alice).getByText("Sent while offline"));
      log(`back online: the pending message reached alice after ${Date.now() - back} ms`);
      await gone(pending);
      await visible(messages(bob).getByText("Sent while offline"));
      for (const page of [alice, bob]) {
        const n = await messages(page).getByText("Sent while offline").count();
        if (n !== 1) throw new Error(`"Sent while offline" shows ${n} times`);
      }
    });

    await does("a silent stall: the heartbeat finds it, the reply lost on the way is not sent twice", async () => {
      // The server's frames stop reaching Bob; his socket stays open. His
      // message reaches the server, its reply does not reach him.
      const t0 = Date.now();
      net.bob.stall = true;
      const box1 = bob.getByLabel("Message", { exact: true });
      await box1.fill("Sent into a stall");
      await box1.press("Enter");
      await visible(messages(alice).getByText("Sent into a stall"));
      await visible(bob.locator(".msg.pending", { hasText: "Sent into a stall" }));
      await until("bob's banner to say stalled", async () => (await banner(bob).count()) > 0 && (await banner(bob).getAttribute("data-health")) === "stalled");
      log(`the stall showed after ${Date.now() - t0} ms`);
      await shot(bob, "13-stalled");
      const resumed = Date.now();
      net.bob.stall = false;
      await gone(banner(bob));
      await gone(bob.locator(".msg.pending"));
      log(`the stall ended: live again and the message confirmed after ${Date.now() - resumed} ms`);
      await visible(messages(bob).getByText("Sent into a stall"));
      for (const page of [alice, bob]) {
        const n = await messages(page).getByText("Sent into a stall").count();
        if (n !== 1) throw new Error(`"Sent into a stall" shows ${n} times`);
      }
    });

    await does("a reload keeps the messages not sent yet", async () => {
      // Nothing passes either way: the server never gets this message
      // before the reload, so only the saved outbox can send it.
      net.bob.drop = true;
      const box1 = bob.getByLabel("Message", { exact: true });
      await box1.fill("Typed before a reload");
      await box1.press("Enter");
      await visible(bob.locator(".msg.pending", { hasText: "Typed before a reload" }));
      await bob.reload();
      net.bob.drop = false;
      await visible(messages(alice).getByText("Typed before a reload"));
      await visible(messages(bob).getByText("Typed before a reload"));
      await gone(bob.locator(".msg.pending"));
      for (const page of [alice, bob]) {
        const n = await messages(page).getByText("Typed before a reload").count();
        if (n !== 1) throw new Error(`"Typed before a reload" shows ${n} times`);
      }
      const saved = await bob.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith("rxgorm-chat-outbox")).length);
      if (saved !== 0) throw new Error("the outbox is still saved after its message was stored");
    });

    await does("a refused message shows as not sent", async () => {
      const box1 = bob.getByLabel("Message", { exact: true });
      await box1.fill("x".repeat(4001));
      await box1.press("Enter");
      const failed = bob.locator(".msg.failed");
      await visible(failed.getByRole("img", { name: "Not sent" }));
      await visible(failed.getByText("Not sent: a message has 1 to 4000 characters"));
      await visible(bob.locator(".toast-error", { hasText: "Message not sent" }));
      // The list scrolled to it: its reason and buttons are in view.
      const list = await box(messages(bob), "the messages");
      const why = await box(failed.getByRole("button", { name: "Discard" }), "Discard");
      if (why.y < list.y || why.y + why.height > list.y + list.height) throw new Error(`Discard is out of view: ${JSON.stringify(why)} in ${JSON.stringify(list)}`);
      await shot(bob, "13a-not-sent");
      await failed.getByRole("button", { name: "Discard" }).click();
      await gone(failed);
    });

    await does("toasts: at most three, gone by themselves", async () => {
      await tab(alice, "Friends");
      const toasts = alice.locator(".toast");
      let most = 0;
      for (let i = 1; i <= 5; i++) {
        await alice.getByLabel("Friend's username").fill(`nobody${i}`);
        await alice.getByRole("button", { name: "Send invitation" }).click();
        await visible(toasts.filter({ hasText: `no user nobody${i}` }));
        most = Math.max(most, await toasts.count());
      }
      if (most > 3) throw new Error(`${most} toasts at once, want at most 3`);
      await shot(alice, "13b-three-toasts");
      await until("the toasts to go by themselves", async () => (await toasts.count()) === 0);
      await alice.getByLabel("Friend's username").fill("");
      await tab(alice, "Chats");
    });

    await does("history: older messages on demand", async () => {
      // 52 more messages push the first ones out of the latest 50.
      for (let i = 1; i <= 52; i++) await send(bob, `count ${i}`);
      await visible(messages(alice).getByText("count 52", { exact: true }));
      await alice.reload();
      await visible(messages(alice).getByText("count 52", { exact: true }));
      await until("the first message to be paged out", async () => (await messages(alice).getByText("Hi Bob! How are you?").count()) === 0);
      // The button, from the keyboard.
      await alice.getByRole("button", { name: "Load older messages" }).focus();
      await alice.keyboard.press("Enter");
      await visible(messages(alice).getByText("Hi Bob! How are you?"));
      await visible(alice.getByText("This is the beginning of the conversation."));
      // Scrolling to the top.
      await alice.reload();
      await visible(messages(alice).getByText("count 52", { exact: true }));
      await until("the first message to be paged out", async () => (await messages(alice).getByText("Hi Bob! How are you?").count()) === 0);
      await messages(alice).evaluate((el) => {
        el.scrollTop = 0;
      });
      await visible(messages(alice).getByText("Hi Bob! How are you?"));
      await visible(alice.getByText("This is the beginning of the conversation."));
    });

    await does("group chat: create, rename", async () => {
      await tab(alice, "Chats");
      await alice.getByRole("button", { name: "+ New group chat" }).click();
      const form = alice.getByRole("form", { name: "New group chat" });
      await form.getByLabel("Group name").fill("Weekend trip");
      await form.getByRole("checkbox", { name: "Bob" }).check();
      await form.getByRole("button", { name: "Create" }).click();
      await visible(alice.getByRole("heading", { name: "Weekend trip" }));
      await send(alice, "Where shall we go?");
      // Bob is told and sees the chat appear.
      await tab(bob, "Chats");
      await visible(bob.locator(".chat-item", { hasText: "Weekend trip" }));
      await alice.getByRole("button", { name: "Details" }).click();
      await alice.getByLabel("Chat name").fill("Weekend trip 2026");
      await alice.getByRole("button", { name: "Rename", exact: true }).click();
      await visible(bob.locator(".chat-item", { hasText: "Weekend trip 2026" }));
      // System events are rows of the chat: a reload keeps them.
      await visible(messages(alice).getByText("Alice created Weekend trip", { exact: false }));
      await visible(messages(alice).getByText("Alice renamed Weekend trip to Weekend trip 2026"));
      await alice.reload();
      await visible(messages(alice).getByText("Alice renamed Weekend trip to Weekend trip 2026"));
      await visible(messages(alice).getByText("Alice created Weekend trip", { exact: false }));
      await alice.getByRole("button", { name: "Details" }).click();
    });

    await does("chat invitation: member invites, admin approves, invitee accepts", async () => {
      await bob.locator(".chat-item", { hasText: "Weekend trip 2026" }).click();
      await visible(messages(bob).getByText("Where shall we go?"));
      await bob.getByRole("button", { name: "Details" }).click();
      await bob.getByLabel("Friend to invite").selectOption({ label: "Carol" });
      await bob.getByRole("button", { name: "Invite", exact: true }).click();
      const pending = bob.getByRole("region", { name: "Pending invitations" });
      await visible(pending.getByText("waiting for an admin's approval"));
      // Alice, the owner, is asked to approve (the badge, then Requests).
      await visible(alice.getByRole("tab", { name: /^Requests\s*1/ }));
      await tab(alice, "Requests");
      const ask = alice.getByRole("region", { name: "Chat invitations" });
      await visible(ask.getByText("wants to invite"));
      await shot(alice, "06-approval-request");
      await ask.getByRole("button", { name: "Approve" }).click();
      await visible(pending.getByText("waiting for Carol to accept"));
      // Carol is asked now.
      await visible(carol.getByRole("tab", { name: /^Requests\s*1/ }));
      await tab(carol, "Requests");
      await visible(carol.getByText("invites you to"));
      await shot(carol, "07-chat-invitation");
      await carol.getByRole("button", { name: "Join" }).click();
      await visible(carol.getByRole("heading", { name: "Weekend trip 2026" }));
      await visible(messages(carol).getByText("Where shall we go?"));
      await gone(pending);
      await visible(bob.getByRole("listitem", { name: "Carol" }));
      // Bob's details show who has the chat open: Carol now does.
      await visible(bob.getByRole("listitem", { name: "Carol" }).getByRole("img", { name: "in the chat" }));
      await visible(bob.getByRole("listitem", { name: "Bob" }).getByRole("img", { name: "in the chat" }));
      await send(carol, "Thanks for the invite!");
      await visible(messages(alice).getByText("Thanks for the invite!"));
      await visible(messages(bob).getByText("Thanks for the invite!"));
      await alice.getByRole("button", { name: "Make admin" }).first().waitFor();
      await visible(messages(bob).getByText("Carol joined the chat"));
      await shot(bob, "08-group-chat");
      await shot(bob, "layout-desktop");
    });

    await does("phone layout (390×844): the chat list, a chat, and back", async () => {
      await bob.setViewportSize({ width: 390, height: 844 });
      const closeDetails = bob.getByRole("button", { name: "Close details" });
      if (await closeDetails.isVisible()) await closeDetails.click();
      // The open chat fills the screen; the list waits behind a back button.
      await visible(bob.getByRole("button", { name: "Back to chats" }));
      if (await bob.locator(".sidebar").isVisible()) throw new Error("the chat list shows beside the chat on a phone");
      const composer = await box(bob.getByLabel("Message", { exact: true }), "the message box");
      if (composer.width < 250) throw new Error(`the message box is ${composer.width} px wide`);
      await shot(bob, "layout-phone-chat");
      await bob.getByRole("button", { name: "Back to chats" }).click();
      await visible(bob.locator(".chat-item").first());
      if (await bob.locator(".main").isVisible()) throw new Error("the chat pane shows beside the list on a phone");
      const side = await box(bob.locator(".sidebar"), "the chat list");
      if (side.width < 380) throw new Error(`the chat list is ${side.width} px wide`);
      // Rows fit the screen, with their times.
      for (const row of await bob.locator(".chat-item").all()) {
        const r = await box(row, "a chat row");
        const t = await box(row.locator(".time"), "a time");
        if (r.x + r.width > 390 || t.x + t.width > 390) throw new Error(`a row or its time passes the screen: ${JSON.stringify(r)} ${JSON.stringify(t)}`);
      }
      await shot(bob, "layout-phone-list");
      await bob.locator(".chat-item", { hasText: "Alice" }).click();
      await visible(bob.getByRole("heading", { name: "Alice" }));
      await send(bob, "Sent from my phone");
      // Details cover the screen, and close.
      await bob.getByRole("button", { name: "Details" }).click();
      const details = await box(bob.getByRole("complementary", { name: "Chat details" }), "the details");
      if (details.width < 380) throw new Error(`the details are ${details.width} px wide`);
      await bob.getByRole("button", { name: "Close details" }).click();
      await bob.getByRole("button", { name: "Back to chats" }).click();
      await bob.locator(".chat-item", { hasText: "Weekend trip 2026" }).click();
      await bob.setViewportSize({ width: 1280, height: 800 });
      await visible(messages(bob).getByText("Thanks for the invite!"));
      await visible(bob.locator(".sidebar"));
    });

    await does("bob deletes his account; the others' UIs follow", async () => {
      await send(bob, "Bye everyone!");
      await visible(messages(carol).getByText("Bye everyone!"));
      await bob.getByRole("button", { name: "Settings" }).click();
      const danger = bob.getByRole("form", { name: "Delete account" });
      await danger.getByLabel("Password").fill(PASSWORD);
      await danger.getByRole("button", { name: "Delete my account" }).click();
      await confirmDialog(bob, "Delete my account for good");
      // Bob is signed out.
      await visible(bob.getByText("Your account was deleted."));
      await visible(bob.getByRole("button", { name: "Sign in", exact: true }));
      await shot(bob, "09-deleted-signed-out");
      // Alice: the private chat and the friend are gone, the group lost a
      // member, Bob's message is a deleted user's now.
      await tab(alice, "Chats");
      await until("Bob's private chat to leave Alice's list", async () => (await alice.locator(".chat-item", { hasText: /^Bob/ }).count()) === 0);
      await alice.locator(".chat-item", { hasText: "Weekend trip 2026" }).click();
      await visible(alice.getByText("2 members"));
      await gone(alice.getByRole("listitem", { name: "Bob" }));
      await visible(messages(alice).getByText("Bye everyone!"));
      await tab(alice, "Friends");
      await gone(alice.getByRole("button", { name: "Message Bob" }));
      await tab(alice, "Chats");
      await shot(alice, "10-after-deletion-alice");
      // Carol: Bob is no longer her friend; the group shows two members.
      await tab(carol, "Friends");
      await gone(carol.getByRole("button", { name: "Message Bob" }));
      await visible(carol.getByText("2 members"));
      await shot(carol, "11-after-deletion-carol");
    });

    await does("group management: admin, leave, delete", async () => {
      await tab(carol, "Chats");
      await carol.locator(".chat-item", { hasText: "Weekend trip 2026" }).click();
      await carol.getByRole("button", { name: "Details" }).click();
      const carolInCarols = carol.getByRole("listitem", { name: "Carol" });
      await visible(carolInCarols);
      // Carol is offline while Alice makes her an admin and renames the
      // chat: she sees both once back, and after a reload.
      await goOffline(carol, "carol");
      await visible(banner(carol));
      await alice.getByRole("listitem", { name: "Carol" }).getByRole("button", { name: "Make admin" }).click();
      await visible(alice.getByRole("listitem", { name: "Carol" }).getByText("admin", { exact: true }));
      await alice.getByLabel("Chat name").fill("Weekend trip 2027");
      await alice.getByRole("button", { name: "Rename", exact: true }).click();
      await visible(messages(alice).getByText("Alice renamed Weekend trip 2026 to Weekend trip 2027"));
      await goOnline(carol, "carol");
      await gone(banner(carol));
      await visible(messages(carol).getByText("Carol is now an admin"));
      await visible(messages(carol).getByText("Alice renamed Weekend trip 2026 to Weekend trip 2027"));
      await shot(carol, "14-events-while-offline");
      await carol.reload();
      await visible(messages(carol).getByText("Carol is now an admin"));
      await visible(messages(carol).getByText("Alice renamed Weekend trip 2026 to Weekend trip 2027"));
      await carol.getByRole("button", { name: "Details" }).click();
      await visible(carolInCarols.getByText("admin", { exact: true }));
      // An admin may rename.
      await visible(carol.getByLabel("Chat name"));
      await alice.getByRole("listitem", { name: "Carol" }).getByRole("button", { name: "Remove admin" }).click();
      await gone(carolInCarols.getByText("admin", { exact: true }));
      await carol.getByRole("button", { name: "Leave chat" }).click();
      await visible(dialog(carol).getByRole("heading", { name: "Leave Weekend trip 2027?" }));
      await confirmDialog(carol, "Leave");
      await until("the group to leave Carol's list", async () => (await carol.locator(".chat-item").count()) === 0);
      await visible(alice.getByText("1 member", { exact: true }));
      await alice.getByRole("button", { name: "Delete chat" }).click();
      await visible(dialog(alice).getByRole("heading", { name: "Delete Weekend trip 2027?" }));
      await shot(alice, "15-confirm-delete");
      await confirmDialog(alice, "Delete chat");
      await until("the group to leave Alice's list", async () => (await alice.locator(".chat-item").count()) === 0);
      await visible(alice.getByRole("heading", { name: "Welcome to rxgorm chat" }));
    });

    await does("sign out: every tab and browser of the user", async () => {
      // A second tab of Alice's browser (same cookie) and a second browser
      // (another sign-in, another token).
      const tab2 = await alice.context().newPage();
      tab2.setDefaultTimeout(TIMEOUT);
      pages["alice-tab-2"] = tab2;
      await tab2.goto(base);
      await visible(tab2.getByRole("tab", { name: /^Chats/ }));
      const other = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-GB", timezoneId: "UTC" });
      const elsewhere = await other.newPage();
      elsewhere.setDefaultTimeout(TIMEOUT);
      pages["alice-elsewhere"] = elsewhere;
      await elsewhere.goto(base);
      await elsewhere.getByLabel("Username").fill("alice");
      await elsewhere.getByLabel("Password").fill(PASSWORD);
      await elsewhere.getByRole("button", { name: "Sign in", exact: true }).click();
      await visible(elsewhere.getByRole("tab", { name: /^Chats/ }));
      // A toast on each page: they belong to the session and go with it.
      for (const page of [alice, tab2]) {
        await tab(page, "Friends");
        await page.getByLabel("Friend's username").fill("nobody");
        await page.getByRole("button", { name: "Send invitation" }).click();
        await visible(page.locator(".toast"));
      }
      await alice.getByRole("button", { name: "Sign out" }).click();
      for (const page of [alice, tab2, elsewhere]) {
        await visible(page.getByRole("button", { name: "Sign in", exact: true }));
        const n = await page.locator(".toast").count();
        if (n !== 0) throw new Error(`${n} toasts outlive the sign-out`);
      }
      await shot(tab2, "10-signed-out-everywhere");
    });
  } catch (err) {
    console.error(`e2e: FAILED at step "${step}": ${err && err.stack ? err.stack : err}`);
    for (const [name, page] of Object.entries(pages)) {
      await shot(page, `failure-${name}`).catch(() => {});
    }
    throw err;
  } finally {
    await browser.close().catch(() => {});
  }
}

try {
  await main();
  log(`all steps passed; screenshots in ${artifacts}`);
} catch {
  process.exit(1);
}
