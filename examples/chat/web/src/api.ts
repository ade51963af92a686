// The REST side of the server (examples/chat/README.md, "REST"): getting a
// session and learning who is signed in. Everything else goes through the
// rxgorm channels in ./rx. The token lives in the HttpOnly rx_token cookie
// that login and register set; the WebSocket upgrade carries it too.
import type { UserData } from "./rx/chat.interfaces";

/** An error answer of the REST API: {"error":{"code","message"}}. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...init.headers, "Content-Type": "application/json" };
  }
  const resp = await fetch(path, init);
  if (resp.status === 204) return undefined as T;
  const data: unknown = await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(resp.status, err?.code ?? "internal", err?.message ?? `HTTP ${resp.status}`);
  }
  return data as T;
}

interface Session {
  token: string;
  user: UserData;
}

/** Creates an account and signs it in. */
export async function register(username: string, password: string, displayName: string): Promise<UserData> {
  return (await request<Session>("POST", "/api/register", { username, password, displayName })).user;
}

/** Signs in. */
export async function login(username: string, password: string): Promise<UserData> {
  return (await request<Session>("POST", "/api/login", { username, password })).user;
}

/**
 * Signs out everywhere: revokes every token of the user and clears the
 * cookie. Every tab and device of the user is closed (4001) and returns
 * to the sign-in screen.
 */
export async function logout(): Promise<void> {
  await request<void>("POST", "/api/logout-all");
}

/** The signed-in user, or null without a valid session. */
export async function me(): Promise<UserData | null> {
  try {
    return await request<UserData>("GET", "/api/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

/** The URL of the avatar drawn from seed (16 hex digits), as setAvatar stores it. */
export function avatarURL(username: string, seed: string): string {
  return `/api/avatar/${encodeURIComponent(username)}.png?seed=${seed}`;
}

/** The URL of the rxgorm WebSocket, on the page's own host. */
export function socketURL(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/rx`;
}
