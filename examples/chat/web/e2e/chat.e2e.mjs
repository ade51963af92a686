// Browser end-to-end test of the chat UI: three people in headless Debian
// Chromium (driven by playwright-core, which never downloads a browser)
// against a running chat server.
//
//   CHAT_URL=http://127.0.0.1:8080/ ARTIFACTS=/tmp/shots node e2e/chat.e2e.mjs
//
// The Go test examples/chat/e2e_test.go starts the server and runs this.
// Environment: CHAT_URL (required), ARTIFACTS (screenshots; default
// e2e-artifacts/ beside this folder), CHROMIUM (default /usr/bin/chromium).
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

async function send(page, text) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
  await until(`"${text}" to be sent`, async () => (await box.inputValue()) === "");
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

    await does("history: older messages on demand", async () => {
      // 52 more messages push the first ones out of the latest 50.
      for (let i = 1; i <= 52; i++) await send(bob, `count ${i}`);
      await visible(messages(alice).getByText("count 52", { exact: true }));
      await alice.reload();
      await visible(messages(alice).getByText("count 52", { exact: true }));
      await until("the first message to be paged out", async () => (await messages(alice).getByText("Hi Bob! How are you?").count()) === 0);
      await alice.getByRole("button", { name: "Load older messages" }).click();
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
      await shot(bob, "08-group-chat");
    });

    await does("bob deletes his account; the others' UIs follow", async () => {
      await send(bob, "Bye everyone!");
      await visible(messages(carol).getByText("Bye everyone!"));
      await bob.getByRole("button", { name: "Settings" }).click();
      const danger = bob.getByRole("form", { name: "Delete account" });
      await danger.getByLabel("Password").fill(PASSWORD);
      await danger.getByRole("button", { name: "Delete my account" }).click();
      await danger.getByRole("button", { name: "Really delete my account" }).click();
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
      await alice.getByRole("listitem", { name: "Carol" }).getByRole("button", { name: "Make admin" }).click();
      await visible(carolInCarols.getByText("admin", { exact: true }));
      // An admin may rename.
      await visible(carol.getByLabel("Chat name"));
      await alice.getByRole("listitem", { name: "Carol" }).getByRole("button", { name: "Remove admin" }).click();
      await gone(carolInCarols.getByText("admin", { exact: true }));
      await carol.getByRole("button", { name: "Leave chat" }).click();
      await carol.getByRole("button", { name: "Click again to confirm" }).click();
      await until("the group to leave Carol's list", async () => (await carol.locator(".chat-item").count()) === 0);
      await visible(alice.getByText("1 member", { exact: true }));
      await alice.getByRole("button", { name: "Delete chat" }).click();
      await alice.getByRole("button", { name: "Click again to confirm" }).click();
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
      await alice.getByRole("button", { name: "Sign out" }).click();
      for (const page of [alice, tab2, elsewhere]) {
        await visible(page.getByRole("button", { name: "Sign in", exact: true }));
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
