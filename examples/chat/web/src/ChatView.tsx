// One open chat: a ChatChannel subscription with its latest 50 messages,
// older pages fetched on demand with the history action, read receipts,
// the composer, and the details panel (members, roles, invitations).
import { Fragment, useEffect, useLayoutEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { ChatChannel } from "./rx/chat.channels";
import type { Chat, ChatInvitation, Message, MessageData, Notice, User } from "./rx/chat.interfaces";
import { useChannel } from "./rx/rxgorm/react";
import { allFriends, useSession } from "./session";
import { chatTitle, invitationStatus } from "./Sidebar";
import { Avatar, ConfirmButton, GroupIcon, RequestItem, clockTime, dayLabel, useAction } from "./ui";

/** How many older messages one click on "Load older messages" fetches. */
const PAGE = 30;
/** How many messages the channel's state holds (rx:"limit=50" on Chat.Messages). */
const LATEST = 50;

export function ChatView({ chatId }: { chatId: number }) {
  const { conn, state: home, go } = useSession();
  const channel = useMemo(() => new ChatChannel(conn, { chatId }), [conn, chatId]);
  const view = useChannel(channel);
  const [details, setDetails] = useState(false);
  const chat = view.state;
  const rel = home.chats.find((c) => c.chatId === chatId);

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
  return (
    <div className={`chat${details ? " with-details" : ""}`}>
      <section className="chat-main" aria-label={`Chat ${title}`}>
        <header className="chat-header">
          {chat.kind === "private" ? <Avatar user={peer} size={38} /> : <GroupIcon name={chat.name} size={38} />}
          <div className="chat-header-text">
            <h2>{title}</h2>
            <span className="muted small">
              {chat.kind === "private"
                ? `@${peer?.username ?? ""}`
                : `${chat.members.length} member${chat.members.length === 1 ? "" : "s"}`}
            </span>
          </div>
          <button type="button" className={details ? "active" : ""} aria-pressed={details} onClick={() => setDetails(!details)}>
            Details
          </button>
        </header>
        <Messages chat={chat} channel={channel} notices={view.runtime.notices ?? null} />
        <Composer channel={channel} />
      </section>
      {details && <ChatDetails chat={chat} channel={channel} peer={peer} />}
    </div>
  );
}

type Item =
  | { readonly type: "message"; readonly key: string; readonly at: string; readonly message: Message }
  | { readonly type: "notice"; readonly key: string; readonly at: string; readonly notice: Notice };

/** A history page's message in the shape of the state's. */
function fromData(m: MessageData): Message {
  return { ...m, readers: m.readers ?? [] };
}

function Messages({ chat, channel, notices }: { chat: Chat; channel: ChatChannel; notices: readonly Notice[] | null }) {
  const { me } = useSession();
  const run = useAction();
  // Messages seen so far: the live ones are replaced on every change; the
  // ones that left the state's latest 50, and the history pages, stay.
  const archive = useRef(new Map<number, Message>());
  const [pages, setPages] = useState(0); // bumped when a page arrives
  // Whether older messages exist: null until known. Fewer than the 50 at
  // first means the state holds the whole chat.
  const [more, setMore] = useState<boolean | null>(() => (chat.messages.length < LATEST ? false : null));
  const [loading, setLoading] = useState(false);

  const messages = useMemo(() => {
    for (const m of chat.messages) archive.current.set(m.id, m);
    return [...archive.current.values()].sort((a, b) => a.id - b.id);
  }, [chat.messages, pages]); // pages: a history page was added to the archive

  const items = useMemo<Item[]>(() => {
    const ms: Item[] = messages.map((m) => ({ type: "message", key: `m${m.id}`, at: m.createdAt, message: m }));
    const ns: Item[] = (notices ?? [])
      .filter((n) => n.kind !== "chat.deleted")
      .map((n, i) => ({ type: "notice", key: `n${i}${n.at}`, at: n.at, notice: n }));
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
  }, [messages, notices]);

  // Read receipts: mark everything read while the chat is open and the
  // page is visible.
  const unread = chat.relations.find((r) => r.userId === me.id)?.unreadCount ?? 0;
  const lastId = messages.at(-1)?.id ?? 0;
  const marked = useRef(0);
  useEffect(() => {
    if (unread === 0) return;
    const mark = () => {
      if (document.visibilityState !== "visible" || marked.current === lastId) return;
      marked.current = lastId;
      channel.markRead(0).catch(() => {
        marked.current = 0;
      });
    };
    mark();
    document.addEventListener("visibilitychange", mark);
    return () => document.removeEventListener("visibilitychange", mark);
  }, [unread, lastId, channel]);

  // Scrolling: follow new messages while at the bottom; keep the view
  // still when older ones are put above.
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const heightBefore = useRef<number | null>(null);
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (heightBefore.current !== null) {
      el.scrollTop += el.scrollHeight - heightBefore.current;
      heightBefore.current = null;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [items]);

  const loadOlder = async () => {
    const oldest = messages[0]?.id ?? 0;
    setLoading(true);
    const page = await run(channel.history(oldest, PAGE));
    setLoading(false);
    if (!page) return;
    heightBefore.current = scroller.current?.scrollHeight ?? null;
    for (const m of page.messages ?? []) if (!archive.current.has(m.id)) archive.current.set(m.id, fromData(m));
    setMore(page.more);
    setPages((n) => n + 1);
  };
  const canLoad = more ?? messages.length >= LATEST;

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
            {item.type === "notice" ? (
              <div className="system">{item.notice.text}</div>
            ) : (
              <Bubble
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
    </div>
  );
}

/** The receipt line under my latest message. */
function seenBy(readers: readonly User[], others: readonly User[]): string {
  if (readers.length === 0) return "Sent";
  if (others.length > 1 && others.every((o) => readers.some((r) => r.id === o.id))) return "Seen by everyone";
  return `Seen by ${readers.map((r) => r.displayName).join(", ")}`;
}

function Bubble(props: { message: Message; mine: boolean; group: boolean; first: boolean; seenLine: string | null }) {
  const { message: m, mine, group, first, seenLine } = props;
  const readers = m.readers.map((r) => r.displayName).join(", ");
  return (
    <div className={`msg${mine ? " mine" : ""}${first ? " first" : ""}`} data-message-id={m.id}>
      {!mine && (first ? <Avatar user={m.sender} size={30} /> : <span className="avatar-gap" />)}
      <div className="msg-body">
        {group && !mine && first && <div className="sender">{m.sender?.displayName}</div>}
        <div className="bubble">
          <span className="text">{m.text}</span>
          <span className="meta">
            {clockTime(m.createdAt)}
            {mine && (
              <span className={`ticks${m.readers.length ? " read" : ""}`} title={readers ? `Seen by ${readers}` : "Sent"}>
                {m.readers.length ? "✓✓" : "✓"}
              </span>
            )}
          </span>
        </div>
        {seenLine && <div className="seen">{seenLine}</div>}
      </div>
    </div>
  );
}

function Composer({ channel }: { channel: ChatChannel }) {
  const run = useAction();
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    if (!text.trim() || sending) return;
    setSending(true);
    const m = await run(channel.sendMessage(text));
    setSending(false);
    if (m) setText("");
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
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKey}
        placeholder="Write a message…"
        aria-label="Message"
        rows={1}
      />
      <button type="submit" className="primary" disabled={!text.trim() || sending}>
        Send
      </button>
    </form>
  );
}

function ChatDetails({ chat, channel, peer }: { chat: Chat; channel: ChatChannel; peer: User | null }) {
  const { me, home, state } = useSession();
  const run = useAction();
  if (chat.kind === "private") {
    return (
      <aside className="details" aria-label="Chat details">
        <div className="profile-card">
          <Avatar user={peer} size={96} />
          <h3>{peer?.displayName}</h3>
          <span className="muted">@{peer?.username}</span>
        </div>
        {peer && (
          <ConfirmButton className="danger wide" onConfirm={() => void run(home.deleteFriend(peer.id))}>
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
      <RenameForm chat={chat} channel={channel} canRename={isAdmin} />
      <section>
        <h3 className="section-title">Members</h3>
        <ul className="list members">
          {members.map((u) => (
            <li key={u.id} className="member" aria-label={u.displayName}>
              <Avatar user={u} size={30} />
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
                    <ConfirmButton className="small" confirm="Hand over?" onConfirm={() => void run(channel.setOwner(u.id))}>
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
          <ConfirmButton className="danger wide" onConfirm={() => void run(channel.leave())}>
            Leave chat
          </ConfirmButton>
        )}
        {isOwner && (
          <ConfirmButton className="danger wide" onConfirm={() => void run(channel.delete_())}>
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
  const [pick, setPick] = useState(0);
  const chosen = candidates.some((u) => u.id === pick) ? pick : (candidates[0]?.id ?? 0);
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
          <select value={chosen} onChange={(e) => setPick(Number(e.target.value))} aria-label="Friend to invite">
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
