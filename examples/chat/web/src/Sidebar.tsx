// The sidebar: the signed-in user, and three tabs over the HomeChannel
// state: the chat list, the friends in their groups, and the requests
// (friend and chat invitations).
import { useEffect, useMemo, useState, type FormEvent } from "react";
import type { ChatInvitation, FriendGroup, Friendship, UserChatRelation } from "./rx/chat.interfaces";
import { allFriends, useSession } from "./session";
import { Avatar, Badge, ConfirmButton, compareIds, GroupIcon, Icon, RequestItem, shortTime, useAction, useToast } from "./ui";

type Tab = "chats" | "friends" | "requests";

export function Sidebar({ live, onLogout }: { live: boolean; onLogout: () => void }) {
  const { me, state, route, go } = useSession();
  const [tab, setTab] = useState<Tab>("chats");
  const unread = state.chats.reduce((n, c) => n + c.unreadCount, 0);
  const requests =
    state.friendInvitationsIn.length + state.chatInvitations.filter((i) => decidable(i, me.id)).length;
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) rxgorm chat` : "rxgorm chat";
  }, [unread]);
  return (
    <aside className="sidebar">
      <header className="me">
        <Avatar user={me} size={40} />
        <div className="me-name">
          <strong>{me.displayName}</strong>
          <span className="muted">
            @{me.username}
            <span className={`live-dot${live ? " on" : ""}`} title={live ? "live" : "reconnecting"} />
          </span>
        </div>
        <button
          type="button"
          className={`icon${route.page === "settings" ? " active" : ""}`}
          aria-label="Settings"
          title="Profile and settings"
          onClick={() => go({ page: "settings" })}
        >
          <Icon name="profile" />
        </button>
        <button type="button" className="icon" aria-label="Sign out" title="Sign out" onClick={onLogout}>
          <Icon name="logout" />
        </button>
      </header>
      <nav className="tabs" role="tablist">
        <TabButton tab="chats" current={tab} onSelect={setTab} label="Chats" count={unread} />
        <TabButton tab="friends" current={tab} onSelect={setTab} label="Friends" count={0} />
        <TabButton tab="requests" current={tab} onSelect={setTab} label="Requests" count={requests} />
      </nav>
      <div className="sidebar-body">
        {tab === "chats" ? <ChatList /> : tab === "friends" ? <Friends /> : <Requests />}
      </div>
    </aside>
  );
}

function TabButton(props: { tab: Tab; current: Tab; onSelect: (t: Tab) => void; label: string; count: number }) {
  return (
    <button type="button" role="tab" aria-selected={props.tab === props.current} onClick={() => props.onSelect(props.tab)}>
      {props.label}
      <Badge count={props.count} />
    </button>
  );
}

/** Whether the user has to act on a chat invitation now. */
function decidable(inv: ChatInvitation, me: string): boolean {
  return inv.deciders.some((d) => d.id === me);
}

/** How a chat is called in the list: the group's name or the peer's. */
export function chatTitle(c: UserChatRelation): string {
  return c.kind === "private" ? (c.peer?.displayName ?? "Private chat") : c.name;
}

function ChatList() {
  const { state, online, route, go } = useSession();
  const [creating, setCreating] = useState(false);
  const chats = useMemo(
    () => [...state.chats].sort((a, b) => b.lastMessageAt.localeCompare(a.lastMessageAt) || compareIds(b.chatId, a.chatId)),
    [state.chats],
  );
  return (
    <>
      <div className="toolbar">
        <button type="button" className="primary small" onClick={() => setCreating(true)}>
          + New group chat
        </button>
      </div>
      {creating && <NewGroupChat onClose={() => setCreating(false)} />}
      {chats.length === 0 && <p className="empty">No chats yet. Befriend someone to start a private chat.</p>}
      <ul className="list chat-list" aria-label="Chats">
        {chats.map((c) => (
          <li key={c.chatId}>
            <button
              type="button"
              className={`chat-item${route.page === "chat" && route.chatId === c.chatId ? " selected" : ""}`}
              onClick={() => go({ page: "chat", chatId: c.chatId })}
            >
              {c.kind === "private" ? (
                <Avatar user={c.peer} size={42} dot={c.peer && online.has(c.peer.id) ? "online" : ""} />
              ) : (
                <GroupIcon name={c.name} size={42} />
              )}
              <span className="chat-item-text">
                <span className="row">
                  <span className="title">{chatTitle(c)}</span>
                  <span className="time">{shortTime(c.lastMessageAt)}</span>
                </span>
                <span className="row">
                  <span className="preview">{c.lastMessage || (c.kind === "group" ? "Group created" : "Say hello!")}</span>
                  <Badge count={c.unreadCount} label="unread" />
                </span>
              </span>
            </button>
          </li>
        ))}
      </ul>
    </>
  );
}

function NewGroupChat({ onClose }: { onClose: () => void }) {
  const { home, state, go } = useSession();
  const run = useAction();
  const [name, setName] = useState("");
  const [picked, setPicked] = useState<ReadonlySet<string>>(new Set());
  const friends = allFriends(state);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const ref = await run(home.createGroupChat(name, [...picked]));
    if (ref) {
      onClose();
      go({ page: "chat", chatId: ref.id });
    }
  };
  return (
    <form className="card inset" onSubmit={submit} aria-label="New group chat">
      <label>
        Group name
        <input value={name} onChange={(e) => setName(e.target.value)} required autoFocus />
      </label>
      <fieldset>
        <legend>Members</legend>
        {friends.length === 0 && <p className="muted small">Your friends will be listed here.</p>}
        {friends.map((f) => (
          <label key={f.friendId} className="check">
            <input
              type="checkbox"
              checked={picked.has(f.friendId)}
              onChange={(e) => {
                const next = new Set(picked);
                if (e.target.checked) next.add(f.friendId);
                else next.delete(f.friendId);
                setPicked(next);
              }}
            />
            <Avatar user={f.friend} size={24} />
            {f.friend?.displayName}
          </label>
        ))}
      </fieldset>
      <div className="actions">
        <button type="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" className="primary">
          Create
        </button>
      </div>
    </form>
  );
}

function Friends() {
  const { home, state } = useSession();
  const run = useAction();
  const toast = useToast();
  const [username, setUsername] = useState("");
  const [message, setMessage] = useState("");
  const [groupName, setGroupName] = useState("");
  const groups = useMemo(
    () =>
      [...state.friendGroups].sort((a, b) => Number(b.isDefault) - Number(a.isDefault) || a.name.localeCompare(b.name)),
    [state.friendGroups],
  );
  const invite = async (e: FormEvent) => {
    e.preventDefault();
    const inv = await run(home.inviteFriend(username.trim(), message.trim()));
    if (inv) {
      toast("info", `Invitation sent to ${inv.receiver.displayName}`);
      setUsername("");
      setMessage("");
    }
  };
  const createGroup = async (e: FormEvent) => {
    e.preventDefault();
    if (await run(home.createFriendGroup(groupName))) setGroupName("");
  };
  return (
    <>
      <form className="card inset" onSubmit={invite} aria-label="Add a friend">
        <h3>Add a friend</h3>
        <input value={username} onChange={(e) => setUsername(e.target.value)} placeholder="Username" aria-label="Friend's username" required />
        <input value={message} onChange={(e) => setMessage(e.target.value)} placeholder="Message (optional)" aria-label="Invitation message" />
        <button type="submit" className="primary small">
          Send invitation
        </button>
      </form>
      {groups.map((g) => (
        <FriendGroupSection key={g.id} group={g} groups={groups} />
      ))}
      <form className="inline-form" onSubmit={createGroup} aria-label="New friend group">
        <input value={groupName} onChange={(e) => setGroupName(e.target.value)} placeholder="New friend group" aria-label="New friend group name" required />
        <button type="submit" className="small">
          Create
        </button>
      </form>
    </>
  );
}

function FriendGroupSection({ group, groups }: { group: FriendGroup; groups: readonly FriendGroup[] }) {
  const { home, online } = useSession();
  const run = useAction();
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(group.name);
  // Online friends first, then by name.
  const friends = useMemo(
    () =>
      [...group.friends].sort(
        (a, b) =>
          Number(online.has(b.friendId)) - Number(online.has(a.friendId)) ||
          (a.friend?.displayName ?? "").localeCompare(b.friend?.displayName ?? ""),
      ),
    [group.friends, online],
  );
  const rename = async (e: FormEvent) => {
    e.preventDefault();
    if (await run(home.renameFriendGroup(group.id, name))) setRenaming(false);
  };
  return (
    <section className="friend-group" aria-label={`Friend group ${group.name}`}>
      <header>
        {renaming ? (
          <form className="inline-form" onSubmit={rename}>
            <input value={name} onChange={(e) => setName(e.target.value)} aria-label="Group name" autoFocus required />
            <button type="submit" className="small">
              Save
            </button>
            <button type="button" className="small" onClick={() => setRenaming(false)}>
              Cancel
            </button>
          </form>
        ) : (
          <>
            <h3>
              {group.name} <span className="muted">{group.friends.length}</span>
            </h3>
            <button
              type="button"
              className="icon small"
              aria-label={`Rename ${group.name}`}
              title="Rename"
              onClick={() => {
                setName(group.name);
                setRenaming(true);
              }}
            >
              <Icon name="edit" />
            </button>
            {!group.isDefault && (
              <ConfirmButton
                className="icon small danger"
                title={`Delete the friend group ${group.name}?`}
                body="Its friends move to your default group."
                confirm="Delete group"
                label={`Delete ${group.name}`}
                hint="Delete the group (its friends move to the default group)"
                onConfirm={() => void run(home.deleteFriendGroup(group.id))}
              >
                <Icon name="trash" />
              </ConfirmButton>
            )}
          </>
        )}
      </header>
      {friends.length === 0 && <p className="empty small">No friends in this group.</p>}
      <ul className="list">
        {friends.map((f) => (
          <FriendRow key={f.id} friendship={f} groups={groups} />
        ))}
      </ul>
    </section>
  );
}

function FriendRow({ friendship: f, groups }: { friendship: Friendship; groups: readonly FriendGroup[] }) {
  const { home, online, go } = useSession();
  const run = useAction();
  const isOnline = online.has(f.friendId);
  return (
    <li className={`friend${isOnline ? " online" : ""}`} aria-label={f.friend?.displayName ?? ""}>
      <Avatar user={f.friend} size={34} dot={isOnline ? "online" : ""} />
      <span className="friend-name">
        <span>{f.friend?.displayName}</span>
        <span className="muted small">
          @{f.friend?.username}
          <span className={`status${isOnline ? " on" : ""}`}>{isOnline ? "online" : "offline"}</span>
        </span>
      </span>
      <span className="friend-actions">
        <button type="button" className="icon small" title="Message" aria-label={`Message ${f.friend?.displayName ?? ""}`} onClick={() => go({ page: "chat", chatId: f.chatId })}>
          <Icon name="message" />
        </button>
        {groups.length > 1 && (
          <select
            value={f.groupId}
            aria-label={`Move ${f.friend?.displayName ?? ""} to group`}
            onChange={(e) => void run(home.moveFriend(f.friendId, e.target.value))}
          >
            {groups.map((g) => (
              <option key={g.id} value={g.id}>
                {g.name}
              </option>
            ))}
          </select>
        )}
        <ConfirmButton
          className="icon small danger"
          title={`Remove ${f.friend?.displayName ?? ""} from your friends?`}
          body="Your private chat with them is deleted, for both of you."
          confirm="Remove friend"
          label={`Remove ${f.friend?.displayName ?? ""}`}
          hint="Remove the friend (deletes your private chat)"
          onConfirm={() => void run(home.deleteFriend(f.friendId))}
        >
          <Icon name="close" />
        </ConfirmButton>
      </span>
    </li>
  );
}

function Requests() {
  const { me, home, state, go } = useSession();
  const run = useAction();
  const toDecide = state.chatInvitations.filter((i) => decidable(i, me.id));
  const nothing =
    toDecide.length + state.friendInvitationsIn.length + state.friendInvitationsOut.length + state.sentChatInvitations.length === 0;
  const join = async (id: string) => {
    const ref = await run(home.acceptChatInvitation(id));
    if (ref) go({ page: "chat", chatId: ref.id });
  };
  return (
    <>
      {nothing && <p className="empty">No pending requests.</p>}
      {state.friendInvitationsIn.length > 0 && (
        <section aria-label="Friend requests">
          <h3 className="section-title">Friend requests</h3>
          <ul className="list">
            {state.friendInvitationsIn.map((inv) => (
              <RequestItem
                key={inv.id}
                icon={<Avatar user={inv.sender} size={34} />}
                choices={[
                  { label: "Accept", primary: true, onClick: () => void run(home.acceptFriendInvitation(inv.id)) },
                  { label: "Decline", onClick: () => void run(home.rejectFriendInvitation(inv.id)) },
                ]}
              >
                <div>
                  <b>{inv.sender?.displayName}</b> <span className="muted small">@{inv.sender?.username}</span>
                </div>
                {inv.message && <div className="quote">“{inv.message}”</div>}
              </RequestItem>
            ))}
          </ul>
        </section>
      )}
      {toDecide.length > 0 && (
        <section aria-label="Chat invitations">
          <h3 className="section-title">Chat invitations</h3>
          <ul className="list">
            {toDecide.map((inv) =>
              inv.status === "awaiting_approval" ? (
                <RequestItem
                  key={inv.id}
                  icon={<GroupIcon name={inv.chatName} size={34} />}
                  choices={[
                    { label: "Approve", primary: true, onClick: () => void run(home.approveChatInvitation(inv.id)) },
                    { label: "Reject", onClick: () => void run(home.rejectChatInvitation(inv.id)) },
                  ]}
                >
                  <b>{inv.inviter?.displayName}</b> wants to invite <b>{inv.invitee?.displayName}</b> to <b>{inv.chatName}</b>
                </RequestItem>
              ) : (
                <RequestItem
                  key={inv.id}
                  icon={<GroupIcon name={inv.chatName} size={34} />}
                  choices={[
                    { label: "Join", primary: true, onClick: () => void join(inv.id) },
                    { label: "Decline", onClick: () => void run(home.rejectChatInvitation(inv.id)) },
                  ]}
                >
                  <b>{inv.inviter?.displayName}</b> invites you to <b>{inv.chatName}</b>
                  {inv.approvedBy && <div className="muted small">approved by {inv.approvedBy.displayName}</div>}
                </RequestItem>
              ),
            )}
          </ul>
        </section>
      )}
      {(state.friendInvitationsOut.length > 0 || state.sentChatInvitations.length > 0) && (
        <section aria-label="Sent requests">
          <h3 className="section-title">Sent</h3>
          <ul className="list">
            {state.friendInvitationsOut.map((inv) => (
              <RequestItem
                key={`f${inv.id}`}
                icon={<Avatar user={inv.receiver} size={34} />}
                choices={[{ label: "Cancel", onClick: () => void run(home.cancelFriendInvitation(inv.id)) }]}
              >
                Friend request to <b>{inv.receiver?.displayName}</b>
              </RequestItem>
            ))}
            {state.sentChatInvitations.map((inv) => (
              <RequestItem key={`c${inv.id}`} icon={<Avatar user={inv.invitee} size={34} />}>
                <b>{inv.invitee?.displayName}</b> to <b>{inv.chatName}</b>
                <div className="muted small">{invitationStatus(inv)}</div>
              </RequestItem>
            ))}
          </ul>
        </section>
      )}
    </>
  );
}

/** Who an invitation waits for, in words. */
export function invitationStatus(inv: ChatInvitation): string {
  if (inv.status === "awaiting_approval") return "waiting for an admin's approval";
  return `waiting for ${inv.invitee?.displayName ?? "the invitee"} to accept`;
}
