// The application shell: who is signed in, the sign-in screen, and the
// workspace of a signed-in user (sidebar + main pane) around their
// HomeChannel subscription.
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import * as api from "./api";
import { ChatView } from "./ChatView";
import { HomeChannel } from "./rx/chat.channels";
import type { UserData } from "./rx/chat.interfaces";
import { Connection, ErrorCode, RxError } from "./rx/rxgorm";
import { useChannel } from "./rx/rxgorm/react";
import { SessionContext, useHashRoute, type Session } from "./session";
import { Settings } from "./Settings";
import { Sidebar } from "./Sidebar";
import { Outbox, Sockets, useHealth, type Health } from "./live";
import { ToastProvider, useClearToasts, useToast } from "./ui";

export function App() {
  // undefined while asking the server who is signed in.
  const [user, setUser] = useState<UserData | null | undefined>(undefined);
  const [farewell, setFarewell] = useState("");
  useEffect(() => {
    api.me().then(setUser, () => setUser(null));
  }, []);
  const signedOut = useCallback((message: string) => {
    // The next user starts from the welcome page, not in this one's chat.
    history.replaceState(null, "", location.pathname);
    setFarewell(message);
    setUser(null);
  }, []);
  if (user === undefined) return <div className="splash">Loading…</div>;
  return (
    <ToastProvider>
      {user ? (
        <Workspace key={user.id} user={user} onSignedOut={signedOut} />
      ) : (
        <AuthScreen
          notice={farewell}
          onSignedIn={(u) => {
            setFarewell("");
            setUser(u);
          }}
        />
      )}
    </ToastProvider>
  );
}

function AuthScreen({ notice, onSignedIn }: { notice: string; onSignedIn: (u: UserData) => void }) {
  const [mode, setMode] = useState<"login" | "register">("login");
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      onSignedIn(
        mode === "login" ? await api.login(username, password) : await api.register(username, password, displayName),
      );
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };
  return (
    <div className="auth">
      <form className="card auth-card" onSubmit={submit} aria-label={mode === "login" ? "Sign in" : "Create account"}>
        <div className="brand">
          <span className="logo">rx</span>
          <div>
            <h1>rxgorm chat</h1>
            <p className="muted">Live state from GORM to React, over one WebSocket.</p>
          </div>
        </div>
        {notice && <p className="notice">{notice}</p>}
        <div className="segmented" role="tablist">
          <button type="button" role="tab" aria-selected={mode === "login"} onClick={() => setMode("login")}>
            Sign in
          </button>
          <button type="button" role="tab" aria-selected={mode === "register"} onClick={() => setMode("register")}>
            Create account
          </button>
        </div>
        <label>
          Username
          <input value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="username" required autoFocus />
        </label>
        {mode === "register" && (
          <label>
            Display name
            <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} placeholder="optional" />
          </label>
        )}
        <label>
          Password
          <input
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete={mode === "login" ? "current-password" : "new-password"}
            required
          />
        </label>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary wide" disabled={busy}>
          {mode === "login" ? "Sign in" : "Create account"}
        </button>
      </form>
    </div>
  );
}

function Workspace({ user, onSignedOut }: { user: UserData; onSignedOut: (message: string) => void }) {
  // One connection per signed-in user: closing it on sign-out makes sure
  // nothing of this user's session outlives it. Its sockets are Sockets',
  // which the heartbeat can abort when they stall.
  const sockets = useMemo(() => new Sockets(), []);
  const conn = useMemo(() => new Connection(api.socketURL(), { WebSocket: sockets.WebSocket }), [sockets]);
  const home = useMemo(() => new HomeChannel(conn, { userId: user.id }), [conn, user.id]);
  const view = useChannel(home);
  const health = useHealth(conn, home, sockets);
  const outbox = useMemo(() => new Outbox(`rxgorm-chat-outbox:${user.id}`), [user.id]);
  const [route, go] = useHashRoute();
  const toast = useToast();
  const clearToasts = useClearToasts();
  const ended = useRef(false);

  // Sign-out ends this tab's session: the socket closes and the toasts go
  // (they belong to the user who signed out). Every other tab gets there
  // too: the server closes their sockets with 4001 (see below).
  const signOut = useCallback(
    (message: string) => {
      if (ended.current) return;
      ended.current = true;
      conn.close();
      clearToasts();
      outbox.clear();
      onSignedOut(message);
    },
    [conn, onSignedOut, clearToasts, outbox],
  );

  // The server closes the sockets of a deleted account (4001); a revoked
  // token is refused the same way. The account.deleting notice may or may
  // not arrive before the close; the user who deleted it knows anyway.
  const deleting = useRef(false);
  const deleteAccount = useCallback(
    async (password: string) => {
      deleting.current = true;
      try {
        await home.deleteAccount(password);
      } catch (err) {
        // A refusal (wrong password) keeps the session; a call cut short
        // by the socket closing (4001) is the deletion going through.
        const cut = err instanceof RxError && (err.code === ErrorCode.Unauthenticated || err.closeCode !== undefined);
        if (!cut) {
          deleting.current = false;
          throw err;
        }
      }
    },
    [home],
  );
  const notices = view.runtime.notices;
  useEffect(() => {
    if (view.error?.code !== ErrorCode.Unauthenticated) return;
    const deleted = deleting.current || notices?.some((n) => n.kind === "account.deleting");
    signOut(deleted ? "Your account was deleted." : "Your session has ended. Please sign in again.");
  }, [view.error, notices, signOut]);

  // Notices (runtime state of the channel) become toasts.
  const shown = useRef(new Set<string>());
  useEffect(() => {
    for (const n of notices ?? []) {
      const key = `${n.at}|${n.kind}|${n.text}`;
      if (shown.current.has(key)) continue;
      shown.current.add(key);
      if (n.kind !== "account.deleting") toast("info", n.text);
    }
  }, [notices, toast]);

  // A chat that leaves the list while open (deleted, left, friend removed)
  // closes.
  const state = view.state;
  const openChat = route.page === "chat" ? route.chatId : "";
  const listed = state?.chats.some((c) => c.chatId === openChat) ?? false;
  const listedChat = useRef("");
  useEffect(() => {
    if (listed) listedChat.current = openChat;
    else if (openChat !== "" && listedChat.current === openChat) {
      listedChat.current = "";
      go({ page: "welcome" });
    }
  }, [listed, openChat, go]);

  // Friends online: the channel's runtime state, kept by the server from
  // the presence of their Home subscriptions.
  const onlineIds = view.runtime.online;
  const online = useMemo<ReadonlySet<string>>(() => new Set((onlineIds ?? []).map(String)), [onlineIds]);

  const session = useMemo<Session | null>(
    () => (state ? { me: state.user ?? user, conn, home, state, online, route, go, deleteAccount, outbox, health } : null),
    [state, user, conn, home, online, route, go, deleteAccount, outbox, health],
  );

  const logout = useCallback(async () => {
    try {
      await api.logout();
    } finally {
      signOut("You signed out.");
    }
  }, [signOut]);

  if (!session) {
    return (
      <div className="splash">
        {view.status === "error" ? `Cannot load your home: ${view.error?.message ?? "error"}` : "Connecting…"}
      </div>
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <div className={`app${route.page === "welcome" ? "" : " in-main"}`}>
        <ConnectionBanner health={health} />
        <Sidebar live={health === "live"} onLogout={logout} />
        <main className="main">
          {route.page === "chat" ? (
            <ChatView key={route.chatId} chatId={route.chatId} />
          ) : route.page === "settings" ? (
            <Settings />
          ) : (
            <Welcome />
          )}
        </main>
      </div>
    </SessionContext.Provider>
  );
}

/**
 * The connection's state when it is not live: offline, lost, stalled.
 * Messages sent meanwhile wait in the outbox, marked pending.
 */
function ConnectionBanner({ health }: { health: Health }) {
  if (health === "live") return null;
  const text =
    health === "offline"
      ? "You are offline. Messages you send wait here and go out once you are back."
      : health === "stalled"
        ? "The connection stalled: nothing arrived for several seconds. Reconnecting…"
        : health === "reconnecting"
          ? "Connection lost. Reconnecting…"
          : "Connecting…";
  return (
    <div className={`banner banner-${health}`} role="alert" aria-label="Connection" data-health={health}>
      <span className="banner-dot" aria-hidden="true" />
      {text}
    </div>
  );
}

function Welcome() {
  return (
    <div className="welcome">
      <span className="logo big">rx</span>
      <h2>Welcome to rxgorm chat</h2>
      <p className="muted">
        Add friends by username in the <b>Friends</b> tab, then pick a chat on the left. Everything you see is live: it is
        the state of two rxgorm channels, kept in step with the database over one WebSocket.
      </p>
    </div>
  );
}
