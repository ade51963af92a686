// What every screen of a signed-in user reads: the user, the connection,
// their HomeChannel, its state and which friends are online, and the route.
import { createContext, useCallback, useContext, useEffect, useState } from "react";
import type { HomeChannel } from "./rx/chat.channels";
import type { Friendship, Home, User } from "./rx/chat.interfaces";
import type { Connection } from "./rx/rxgorm";
import type { Health, Outbox } from "./live";

/** Where the main pane is: nothing, a chat, or the settings. */
export type Route = { readonly page: "welcome" } | { readonly page: "chat"; readonly chatId: string } | { readonly page: "settings" };

export interface Session {
  /** The signed-in user (live: the home's profile once it arrived). */
  readonly me: User;
  readonly conn: Connection;
  readonly home: HomeChannel;
  /** The home's state; never null below the workspace, which waits for it. */
  readonly state: Home;
  /** The ids of the friends online now (the home's runtime state online). */
  readonly online: ReadonlySet<string>;
  readonly route: Route;
  go(route: Route): void;
  /** Deletes the account; the workspace then signs out saying so. */
  deleteAccount(password: string): Promise<void>;
  /** The messages not stored yet. */
  readonly outbox: Outbox;
  /** The connection's health (the heartbeat's verdict). */
  readonly health: Health;
}

export const SessionContext = createContext<Session | null>(null);

/** The session of the signed-in user. */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside the workspace");
  return s;
}

/** Every friendship of the home, across the friend groups. */
export function allFriends(home: Home): Friendship[] {
  return home.friendGroups.flatMap((g) => g.friends);
}

function parseHash(hash: string): Route {
  const m = /^#\/chats\/(\d+)$/.exec(hash);
  if (m) return { page: "chat", chatId: m[1]! };
  if (hash === "#/settings") return { page: "settings" };
  return { page: "welcome" };
}

/** The route, kept in location.hash so that a reload stays on it. */
export function useHashRoute(): [Route, (r: Route) => void] {
  const [route, setRoute] = useState<Route>(() => parseHash(location.hash));
  useEffect(() => {
    const onHash = () => setRoute(parseHash(location.hash));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  const go = useCallback((r: Route) => {
    const hash = r.page === "chat" ? `#/chats/${r.chatId}` : r.page === "settings" ? "#/settings" : "#/";
    if (location.hash !== hash) location.hash = hash;
    setRoute(r);
  }, []);
  return [route, go];
}
