// One open chat: a ChatChannel subscription with its latest 50 messages
// and system events, older pages fetched on demand with the history
// action (scrolling to the top, or the button), messages not stored yet
// (the outbox: pending, resent after a reconnect, or failed), read receipts,
// edits of one's own messages (optimistic client writes), who is typing
// (runtime state) and who has the chat open (presence), the composer, and
// the details panel (members, roles, invitations).
import {
  Fragment,
  useCallback,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  type FormEvent,
  type KeyboardEvent,
} from "react";
import { ChatChannel } from "./rx/chat.channels";
import type { Chat, ChatEvent, ChatInvitation, Message, MessageData, User } from "./rx/chat.interfaces";
import { useChannel } from "./rx/rxgorm/react";
import { allFriends, useSession } from "./session";
import { chatTitle, invitationStatus } from "./Sidebar";
import { Avatar, ConfirmButton, compareIds, GroupIcon, Icon, RequestItem, clockTime, dayLabel, typingText, useAction, useToast } from "./ui";
import { ErrorCode, RxError, type Present } from "./rx/rxgorm";
import { usePending, type Pending } from "./live";

/** How many older messages scrolling to the top (or "Load older messages") fetches. */
const PAGE = 30;
/** How many messages the channel's state holds (rx:"limit=50" on Chat.Messages). */
const LATEST = 50;
/**
 * While the user types, typing(true) goes out at most this often (the
 * server shows the indicator for 6 s after the last one).
 */
const TYPING_REPEAT = 2000;
/** A pause this long in typing sends typing(false). */
const TYPING_IDLE = 4000;

export function ChatView({ chatId }: { chatId: string }) {
  const { conn, state: home, online, go, outbox } = useSession();
  const channel = useMemo(() => new ChatChannel(conn, { chatId }), [conn, chatId]);
  const view = useChannel(channel);
  const pending = usePending(outbox, chatId);
  const toast = useToast();

  // The outbox: messages go out one at a time, in order, each with its
  // client id; one cut short by a lost connection stays pending and goes
  // again once the chat is live (the id makes sure it is stored once); a
  // refusal marks it failed, with the reason, and the next one goes.
  const inflight = useRef<string | null>(null);
  const flush = useCallback(() => {
    if (inflight.current !== null) return;
    const p = outbox.items.find((x) => x.chatId === chatId && x.error === undefined);
    if (!p) return;
    inflight.current = p.clientId;
    channel.postMessage(p.text, p.clientId).then(
      () => {
        inflight.current = null;
        outbox.remove(p.clientId); // which flushes the next (the effect below)
      },
      (err: unknown) => {
        inflight.current = null;
        const lost =
          err instanceof RxError && err.code === ErrorCode.Internal && (err.closeCode !== undefined || /^connection (lost|closed)/.test(err.message));
        if (lost) return; // sent again when the chat is live
        const reason = err instanceof Error && err.message ? err.message : String(err);
        outbox.fail(p.clientId, reason);
        toast("error", `Message not sent: ${reason}`);
      },
    );
  }, [outbox, chatId, channel, toast]);
  const ready = view.status === "ready";
  useEffect(() => {
    if (ready) flush();
  }, [ready, pending, flush]);
  const [details, setDetails] = useState(false);
  const chat = view.state;
  const rel = home.chats.find((c) => c.chatId === chatId);
  const typingIds = view.runtime.typing;
  const typing = useMemo(
    () => typingText((typingIds ?? []).map((id) => chat?.members.find((u) => u.id === String(id))?.displayName ?? "Someone")),
    [typingIds, chat?.members],
  );

  // The server ended the subscription with forbidden: a re-check of the
  // membership refused it (left, removed, chat deleted). Nothing more
  // arrives for it: back to the chat list.
  const refused = view.error?.code === ErrorCode.Forbidden;
  useEffect(() => {
    if (!refused) return;
    toast("info", "You no longer have access to this chat.");
    go({ page: "welcome" });
  }, [refused, toast, go]);

  if (view.runtime.closed || view.status === "error") {
    return (
      <div className="welcome">
        <h2>This chat is not available</h2>
        <p className="muted">{view.runtime.closed ? "You are no longer a member of it." : (view.error?.message ?? "")}</p>
        <button type="button" onClick={() => go({ page: "welcome" })}>
          Back
        </button>
      </div>
    );
  }
  if (!chat) return <div className="welcome muted">Loading the chat…</div>;
  const title = rel ? chatTitle(rel) : chat.name;
  const peer = chat.kind === "private" ? (rel?.peer ?? null) : null;
  const peerOnline = peer !== null && online.has(peer.id);
  const here = chat.kind === "group" ? presentIds(view.presence).size : 0;
  return (
    <div className={`chat${details ? " with-details" : ""}`}>
      <section className="chat-main" aria-label={`Chat ${title}`}>
        <header className="chat-header">
          <button type="button" className="icon back" aria-label="Back to chats" title="Back to chats" onClick={() => go({ page: "welcome" })}>
            <Icon name="back" />
          </button>
          {chat.kind === "private" ? (
            <Avatar user={peer} size={38} dot={peerOnline ? "online" : ""} />
          ) : (
            <GroupIcon name={chat.name} size={38} />
          )}
          <div className="chat-header-text">
            <h2>{title}</h2>
            <span className="muted small">
              {chat.kind === "private" ? (
                <>
                  <span>@{peer?.username ?? ""}</span>
                  {peerOnline && <span className="status on">online</span>}
                </>
              ) : (
                <>
                  <span>{`${chat.members.length} member${chat.members.length === 1 ? "" : "s"}`}</span>
                  {here > 0 && <span className="status on">{`${here} here`}</span>}
                </>
              )}
            </span>
          </div>
          <button type="button" className={details ? "active" : ""} aria-pressed={details} onClick={() => setDetails(!details)}>
            Details
          </button>
        </header>
        <Messages chat={chat} channel={channel} pending={pending} />
        <div className="typing" aria-live="polite" aria-label="Typing">
          {typing && (
            <>
              <span className="typing-dots" aria-hidden="true">
                <i />
                <i />
                <i />
              </span>
              {typing}
            </>
          )}
        </div>
        <Composer
          channel={channel}
          onSend={(text) => {
            outbox.add(chatId, text);
            flush();
          }}
        />
      </section>
      {details && <ChatDetails chat={chat} channel={channel} peer={peer} presence={view.presence} onClose={() => setDetails(false)} />}
    </div>
  );
}

/** The ids of the users who have the chat open (its presence). */
function presentIds(presence: readonly Present[]): ReadonlySet<string> {
  return new Set(presence.map((p) => p.user));
}

type Item =
  | { readonly type: "message"; readonly key: string; readonly at: string; readonly message: Message }
  | { readonly type: "event"; readonly key: string; readonly at: string; readonly event: ChatEvent };

/** A history page's message in the shape of the state's. */
function fromData(m: MessageData): Message {
  return { ...m, readers: m.readers ?? [] };
}

function Messages({ chat, channel, pending }: { chat: Chat; channel: ChatChannel; pending: readonly Pending[] }) {
  const { me, outbox } = useSession();
  const run = useAction();
  // Messages seen so far: the live ones are replaced on every change; the
  // ones that left the state's latest 50, and the history pages, stay.
  const archive = useRef(new Map<string, Message>());
  const [pages, setPages] = useState(0); // bumped when a page arrives
  // Whether older messages exist: null until known. Fewer than the 50 at
  // first means the state holds the whole chat.
  const [more, setMore] = useState<boolean | null>(() => (chat.messages.length < LATEST ? false : null));
  const [loading, setLoading] = useState(false);
  const loadingRef = useRef(false);

  const messages = useMemo(() => {
    for (const m of chat.messages) archive.current.set(m.id, m);
    return [...archive.current.values()].sort((a, b) => compareIds(a.id, b.id));
  }, [chat.messages, pages]); // pages: a history page was added to the archive

  // System events: rows of the state (the latest 50) and of the history
  // pages, kept like messages once seen.
  const eventArchive = useRef(new Map<string, ChatEvent>());
  const events = useMemo(() => {
    for (const ev of chat.events) eventArchive.current.set(ev.id, ev);
    return [...eventArchive.current.values()].sort((a, b) => compareIds(a.id, b.id));
  }, [chat.events, pages]); // pages: a history page was added to the archive

  const items = useMemo<Item[]>(() => {
    const ms: Item[] = messages.map((m) => ({ type: "message", key: `m${m.id}`, at: m.createdAt, message: m }));
    const ns: Item[] = events.map((ev) => ({ type: "event", key: `e${ev.id}`, at: ev.createdAt, event: ev }));
    // Merge by time; both lists are in order already.
    const out: Item[] = [];
    let i = 0;
    let j = 0;
    while (i < ms.length || j < ns.length) {
      const m = ms[i];
      const n = ns[j];
      if (m && (!n || Date.parse(m.at) <= Date.parse(n.at))) {
        out.push(m);
        i++;
      } else if (n) {
        out.push(n);
        j++;
      }
    }
    return out;
  }, [messages, events]);

  // Pending messages of the outbox, after the stored ones; one that is
  // stored already (its answer was lost) shows once, as stored.
  const stored = useMemo(() => new Set(chat.messages.map((m) => m.clientId).filter((id): id is string => !!id)), [chat.messages]);
  const unsent = pending.filter((p) => !stored.has(p.clientId));
  const unsentKey = unsent.map((p) => `${p.clientId}${p.error === undefined ? "" : "!"}`).join();

  // Read receipts: mark everything read while the chat is open and the
  // page is visible.
  const unread = chat.relations.find((r) => r.userId === me.id)?.unreadCount ?? 0;
  const lastId = messages.at(-1)?.id ?? "";
  const marked = useRef("");
  useEffect(() => {
    if (unread === 0) return;
    const mark = () => {
      if (document.visibilityState !== "visible" || marked.current === lastId) return;
      marked.current = lastId;
      channel.markRead(0).catch(() => {
        marked.current = "";
      });
    };
    mark();
    document.addEventListener("visibilitychange", mark);
    return () => document.removeEventListener("visibilitychange", mark);
  }, [unread, lastId, channel]);

  // Scrolling: follow new messages while at the bottom, and go there when
  // one of mine is sent or refused; keep the view still when older ones
  // are put above.
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const heightBefore = useRef<number | null>(null);
  const lastUnsent = useRef("");
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const mine = unsentKey !== lastUnsent.current && unsentKey !== "";
    lastUnsent.current = unsentKey;
    if (heightBefore.current !== null) {
      el.scrollTop += el.scrollHeight - heightBefore.current;
      heightBefore.current = null;
    } else if (atBottom.current || mine) {
      el.scrollTop = el.scrollHeight;
      atBottom.current = true;
    }
  }, [items, unsentKey]);

  const loadOlder = async () => {
    if (loadingRef.current) return;
    loadingRef.current = true;
    const oldest = messages[0]?.id ?? 0;
    setLoading(true);
    const page = await run(channel.history(oldest, PAGE));
    loadingRef.current = false;
    setLoading(false);
    if (!page) return;
    heightBefore.current = scroller.current?.scrollHeight ?? null;
    for (const m of page.messages ?? []) if (!archive.current.has(m.id)) archive.current.set(m.id, fromData(m));
    for (const ev of page.events ?? []) if (!eventArchive.current.has(ev.id)) eventArchive.current.set(ev.id, ev);
    setMore(page.more);
    setPages((n) => n + 1);
  };
  const canLoad = more ?? messages.length >= LATEST;

  // Only the messages of the state can be edited: a client write must
  // name a row of the subscription's state.
  const live = useMemo(() => new Set(chat.messages.map((m) => m.id)), [chat.messages]);

  // My latest message carries the "Seen by" line.
  const myLast = [...messages].reverse().find((m) => m.senderId === me.id)?.id ?? 0;
  const others = chat.members.filter((u) => u.id !== me.id);

  return (
    <div
      className="messages"
      ref={scroller}
      onScroll={(e) => {
        const el = e.currentTarget;
        atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
        // At the top: the next older page comes in (the button stays, for
        // the keyboard).
        if (el.scrollTop < 80 && canLoad && !loadingRef.current && el.scrollHeight > el.clientHeight) void loadOlder();
      }}
      aria-label="Messages"
    >
      <div className="history-edge">
        {canLoad ? (
          <button type="button" className="small" disabled={loading} onClick={loadOlder}>
            {loading ? "Loading…" : "Load older messages"}
          </button>
        ) : (
          <span className="muted small">{messages.length ? "This is the beginning of the conversation." : "No messages yet: say hello!"}</span>
        )}
      </div>
      {items.map((item, k) => {
        const prev = items[k - 1];
        const day = dayLabel(item.at);
        const newDay = !prev || dayLabel(prev.at) !== day;
        return (
          <Fragment key={item.key}>
            {newDay && <div className="day">{day}</div>}
            {item.type === "event" ? (
              <div className="system" data-kind={item.event.kind}>
                {item.event.text} <span className="system-time">{clockTime(item.event.createdAt)}</span>
              </div>
            ) : (
              <Bubble
                channel={channel}
                editable={live.has(item.message.id)}
                message={item.message}
                mine={item.message.senderId === me.id}
                group={chat.kind === "group"}
                first={newDay || prev?.type !== "message" || prev.message.senderId !== item.message.senderId}
                seenLine={item.message.id === myLast ? seenBy(item.message.readers, others) : null}
              />
            )}
          </Fragment>
        );
      })}
      {unsent.map((p) => (
        <PendingBubble key={p.clientId} pending={p} onRetry={() => outbox.retry(p.clientId)} onDiscard={() => outbox.remove(p.clientId)} />
      ))}
    </div>
  );
}

/** One of my messages not stored yet: pending (a clock), or refused (why, Retry, Discard). */
function PendingBubble({ pending: p, onRetry, onDiscard }: { pending: Pending; onRetry: () => void; onDiscard: () => void }) {
  const failed = p.error !== undefined;
  return (
    <div className={`msg mine first ${failed ? "failed" : "pending"}`} data-client-id={p.clientId}>
      <div className="msg-body">
        <div className="bubble">
          <span className="text">{p.text}</span>
          <span className="meta">
            {clockTime(p.at)}
            {failed ? (
              <span className="pending-mark" role="img" aria-label="Not sent" title="Not sent">
                <Icon name="alert" />
              </span>
            ) : (
              <span className="pending-mark" role="img" aria-label="Sending" title="Sending: waiting for the server">
                <Icon name="clock" />
              </span>
            )}
          </span>
        </div>
        {failed && (
          <div className="failed-line" role="alert">
            Not sent: {p.error}
            <button type="button" className="small" onClick={onRetry}>
              Retry
            </button>
            <button type="button" className="small" onClick={onDiscard}>
              Discard
            </button>
          </div>
        )}
      </div>
    </div>
  );
}

/** The receipt line under my latest message. */
function seenBy(readers: readonly User[], others: readonly User[]): string {
  if (readers.length === 0) return "Sent";
  if (others.length > 1 && others.every((o) => readers.some((r) => r.id === o.id))) return "Seen by everyone";
  return `Seen by ${readers.map((r) => r.displayName).join(", ")}`;
}

function Bubble(props: {
  channel: ChatChannel;
  editable: boolean;
  message: Message;
  mine: boolean;
  group: boolean;
  first: boolean;
  seenLine: string | null;
}) {
  const { channel, editable, message: m, mine, group, first, seenLine } = props;
  const run = useAction();
  const [editing, setEditing] = useState(false);
  const [saving, setSaving] = useState(false);
  const readers = m.readers.map((r) => r.displayName).join(", ");
  // An edit is the generated optimistic client write: the new text shows at
  // once; a refusal puts the old one back (and run says why in a toast).
  const save = async (text: string) => {
    setEditing(false);
    const t = text.trim();
    if (t === m.text) return;
    setSaving(true);
    await run(channel.save("Message", m.id, { text: t }));
    setSaving(false);
  };
  return (
    <div className={`msg${mine ? " mine" : ""}${first ? " first" : ""}${saving ? " saving" : ""}`} data-message-id={m.id}>
      {!mine && (first ? <Avatar user={m.sender} size={30} /> : <span className="avatar-gap" />)}
      {mine && editable && !editing && (
        <button type="button" className="icon small msg-edit" aria-label="Edit message" title="Edit" onClick={() => setEditing(true)}>
          <Icon name="edit" />
        </button>
      )}
      <div className="msg-body">
        {group && !mine && first && <div className="sender">{m.sender?.displayName}</div>}
        {editing ? (
          <EditForm text={m.text} onSave={(t) => void save(t)} onCancel={() => setEditing(false)} />
        ) : (
          <div className="bubble">
            <span className="text">{m.text}</span>
            <span className="meta">
              {m.editedAt && (
                <span className="edited" title={`Edited ${clockTime(m.editedAt)}`}>
                  edited
                </span>
              )}
              {clockTime(m.createdAt)}
              {mine && (
                <span className={`ticks${m.readers.length ? " read" : ""}`} title={readers ? `Seen by ${readers}` : "Sent"}>
                  {m.readers.length ? "✓✓" : "✓"}
                </span>
              )}
            </span>
          </div>
        )}
        {seenLine && <div className="seen">{seenLine}</div>}
      </div>
    </div>
  );
}

/** The inline editor of one of my messages: Enter saves, Escape cancels. */
function EditForm({ text, onSave, onCancel }: { text: string; onSave: (text: string) => void; onCancel: () => void }) {
  const [value, setValue] = useState(text);
  const ok = value.trim() !== "";
  const submit = (e?: FormEvent) => {
    e?.preventDefault();
    if (ok) onSave(value);
  };
  return (
    <form className="edit-form" aria-label="Edit message" onSubmit={submit}>
      <textarea
        value={value}
        onChange={(e) => setValue(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey) {
            e.preventDefault();
            submit();
          } else if (e.key === "Escape") onCancel();
        }}
        aria-label="Edited message"
        rows={1}
        autoFocus
      />
      <div className="actions">
        <button type="button" className="small" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="small primary" disabled={!ok}>
          Save
        </button>
      </div>
    </form>
  );
}

/**
 * Tells the chat that the user types: typed(text) on every change sends
 * typing(true) at most every TYPING_REPEAT ms, and typing(false) when the
 * text is cleared or after a pause of TYPING_IDLE ms; stop() sends it at
 * once (blur), sent() forgets the state (the server stops the indicator
 * when a message is sent, and when the chat is closed).
 */
function useTypingSignal(channel: ChatChannel) {
  const last = useRef(0); // when typing(true) last went out; 0: not typing
  const idle = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const signal = useCallback(
    (on: boolean) => {
      // A refusal (the chat was just left or closed) changes nothing here.
      channel.typing(on).catch(() => {});
    },
    [channel],
  );
  const sent = useCallback(() => {
    clearTimeout(idle.current);
    last.current = 0;
  }, []);
  const stop = useCallback(() => {
    const was = last.current !== 0;
    sent();
    if (was) signal(false);
  }, [sent, signal]);
  const typed = useCallback(
    (text: string) => {
      if (!text.trim()) {
        stop();
        return;
      }
      const now = Date.now();
      if (now - last.current >= TYPING_REPEAT) {
        last.current = now;
        signal(true);
      }
      clearTimeout(idle.current);
      idle.current = setTimeout(stop, TYPING_IDLE);
    },
    [signal, stop],
  );
  useEffect(() => () => clearTimeout(idle.current), []);
  return { typed, stop, sent };
}

/**
 * The message box. Sending hands the text to the outbox (onSend) and
 * clears the box at once: the message shows as pending until stored.
 */
function Composer({ channel, onSend }: { channel: ChatChannel; onSend: (text: string) => void }) {
  const [text, setText] = useState("");
  const typing = useTypingSignal(channel);
  const send = (e?: FormEvent) => {
    e?.preventDefault();
    if (!text.trim()) return;
    typing.sent();
    onSend(text);
    setText("");
  };
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      void send();
    }
  };
  return (
    <form className="composer" onSubmit={send}>
      <textarea
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          typing.typed(e.target.value);
        }}
        onBlur={typing.stop}
        onKeyDown={onKey}
        placeholder="Write a message…"
        aria-label="Message"
        rows={1}
      />
      <button type="submit" className="primary" disabled={!text.trim()}>
        Send
      </button>
    </form>
  );
}

function ChatDetails(props: { chat: Chat; channel: ChatChannel; peer: User | null; presence: readonly Present[]; onClose: () => void }) {
  const { chat, channel, peer, presence, onClose } = props;
  const close = (
    <button type="button" className="icon details-close" aria-label="Close details" title="Close" onClick={onClose}>
      <Icon name="close" />
    </button>
  );
  const { me, home, state, online } = useSession();
  const run = useAction();
  // Who has the chat open now: the subscription's presence.
  const present = presentIds(presence);
  if (chat.kind === "private") {
    const status = peer && present.has(peer.id) ? "in the chat" : peer && online.has(peer.id) ? "online" : "offline";
    return (
      <aside className="details" aria-label="Chat details">
        {close}
        <div className="profile-card">
          <Avatar user={peer} size={96} dot={status === "offline" ? "" : status} />
          <h3>{peer?.displayName}</h3>
          <span className="muted">@{peer?.username}</span>
          <span className={`status${status === "offline" ? "" : " on"}`}>{status}</span>
        </div>
        {peer && (
          <ConfirmButton
            className="danger wide"
            title={`Remove ${peer.displayName} from your friends?`}
            body="Your private chat with them is deleted, for both of you."
            confirm="Remove friend"
            onConfirm={() => void run(home.deleteFriend(peer.id))}
          >
            Remove friend
          </ConfirmButton>
        )}
      </aside>
    );
  }
  const isOwner = chat.ownerId === me.id;
  const isAdmin = isOwner || chat.admins.some((a) => a.id === me.id);
  const role = (u: User) => (u.id === chat.ownerId ? "owner" : chat.admins.some((a) => a.id === u.id) ? "admin" : "");
  const members = [...chat.members].sort(
    (a, b) => rank(role(a)) - rank(role(b)) || a.displayName.localeCompare(b.displayName),
  );
  const invited = new Set(chat.invitations.map((i) => i.inviteeId));
  const memberIds = new Set(chat.members.map((u) => u.id));
  const candidates = allFriends(state).filter((f) => !memberIds.has(f.friendId) && !invited.has(f.friendId));
  return (
    <aside className="details" aria-label="Chat details">
      {close}
      <RenameForm chat={chat} channel={channel} canRename={isAdmin} />
      <section>
        <h3 className="section-title">
          Members <span className="muted">{present.size} in the chat now</span>
        </h3>
        <ul className="list members">
          {members.map((u) => (
            <li key={u.id} className="member" aria-label={u.displayName}>
              <Avatar user={u} size={30} dot={present.has(u.id) ? "in the chat" : ""} />
              <span className="friend-name">
                <span>
                  {u.displayName}
                  {u.id === me.id && <span className="muted"> (you)</span>}
                </span>
                {role(u) && <span className={`role role-${role(u)}`}>{role(u)}</span>}
                {isOwner && u.id !== me.id && (
                  <span className="member-actions">
                    {role(u) === "admin" ? (
                      <button type="button" className="small" onClick={() => void run(channel.removeAdmin(u.id))}>
                        Remove admin
                      </button>
                    ) : (
                      <button type="button" className="small" onClick={() => void run(channel.addAdmin(u.id))}>
                        Make admin
                      </button>
                    )}
                    <ConfirmButton
                      className="small"
                      title={`Make ${u.displayName} the owner of ${chat.name}?`}
                      body="You stay an admin."
                      confirm="Make owner"
                      onConfirm={() => void run(channel.setOwner(u.id))}
                    >
                      Make owner
                    </ConfirmButton>
                  </span>
                )}
              </span>
            </li>
          ))}
        </ul>
      </section>
      <InviteForm channel={channel} isAdmin={isAdmin} candidates={candidates.map((f) => f.friend).filter((u): u is User => u !== null)} />
      {chat.invitations.length > 0 && (
        <section aria-label="Pending invitations">
          <h3 className="section-title">Pending invitations</h3>
          <ul className="list">
            {chat.invitations.map((inv) => (
              <PendingInvitation key={inv.id} inv={inv} canApprove={isAdmin} />
            ))}
          </ul>
        </section>
      )}
      <section className="danger-zone">
        {!isOwner && (
          <ConfirmButton
            className="danger wide"
            title={`Leave ${chat.name}?`}
            body="You will need a new invitation to come back."
            confirm="Leave"
            onConfirm={() => void run(channel.leave())}
          >
            Leave chat
          </ConfirmButton>
        )}
        {isOwner && (
          <ConfirmButton
            className="danger wide"
            title={`Delete ${chat.name}?`}
            body="The chat and all its messages are deleted for every member. This cannot be undone."
            confirm="Delete chat"
            onConfirm={() => void run(channel.delete_())}
          >
            Delete chat
          </ConfirmButton>
        )}
      </section>
    </aside>
  );
}

function rank(role: string): number {
  return role === "owner" ? 0 : role === "admin" ? 1 : 2;
}

function RenameForm({ chat, channel, canRename }: { chat: Chat; channel: ChatChannel; canRename: boolean }) {
  const run = useAction();
  const [name, setName] = useState(chat.name);
  useEffect(() => setName(chat.name), [chat.name]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    await run(channel.rename(name));
  };
  return (
    <div className="profile-card">
      <GroupIcon name={chat.name} size={72} />
      {canRename ? (
        <form className="inline-form" onSubmit={submit} aria-label="Rename chat">
          <input value={name} onChange={(e) => setName(e.target.value)} aria-label="Chat name" required />
          <button type="submit" className="small" disabled={name.trim() === chat.name}>
            Rename
          </button>
        </form>
      ) : (
        <h3>{chat.name}</h3>
      )}
    </div>
  );
}

function InviteForm({ channel, isAdmin, candidates }: { channel: ChatChannel; isAdmin: boolean; candidates: readonly User[] }) {
  const run = useAction();
  const [pick, setPick] = useState("");
  const chosen = candidates.some((u) => u.id === pick) ? pick : (candidates[0]?.id ?? "");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (chosen) await run(channel.invite(chosen));
  };
  return (
    <section>
      <h3 className="section-title">Invite a friend</h3>
      {candidates.length === 0 ? (
        <p className="muted small">All your friends are here or invited.</p>
      ) : (
        <form className="inline-form" onSubmit={submit} aria-label="Invite a friend">
          <select value={chosen} onChange={(e) => setPick(e.target.value)} aria-label="Friend to invite">
            {candidates.map((u) => (
              <option key={u.id} value={u.id}>
                {u.displayName}
              </option>
            ))}
          </select>
          <button type="submit" className="small primary">
            Invite
          </button>
        </form>
      )}
      {!isAdmin && candidates.length > 0 && <p className="muted small">An admin approves your invitation first.</p>}
    </section>
  );
}

function PendingInvitation({ inv, canApprove }: { inv: ChatInvitation; canApprove: boolean }) {
  const { home } = useSession();
  const run = useAction();
  const choices =
    canApprove && inv.status === "awaiting_approval"
      ? [
          { label: "Approve", primary: true, onClick: () => void run(home.approveChatInvitation(inv.id)) },
          { label: "Reject", onClick: () => void run(home.rejectChatInvitation(inv.id)) },
        ]
      : [];
  return (
    <RequestItem icon={<Avatar user={inv.invitee} size={30} />} choices={choices}>
      <div>
        <b>{inv.invitee?.displayName}</b> <span className="muted small">by {inv.inviter?.displayName}</span>
      </div>
      <div className="muted small">{invitationStatus(inv)}</div>
    </RequestItem>
  );
}
