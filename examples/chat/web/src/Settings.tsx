// The settings page: profile (display name, avatar), password, and account
// deletion.
import { useEffect, useState, type FormEvent } from "react";
import * as api from "./api";
import { useSession } from "./session";
import { Avatar, ConfirmButton, Icon, useAction, useToast } from "./ui";

/** How many avatars the picker proposes at once. */
const CHOICES = 6;

/** Random avatar seeds: 16 hex digits each. */
function randomSeeds(): string[] {
  return Array.from({ length: CHOICES }, () =>
    [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join(""),
  );
}

/** Proposes random avatars to pick from (setAvatar), and more on demand. */
function AvatarPicker() {
  const { me, home } = useSession();
  const run = useAction();
  const toast = useToast();
  const [seeds, setSeeds] = useState<string[] | null>(null);
  if (!seeds) {
    return (
      <div className="actions start">
        <button type="button" className="small" onClick={() => setSeeds(randomSeeds())}>
          Change avatar
        </button>
      </div>
    );
  }
  const pick = async (seed: string) => {
    if (await run(home.setAvatar(seed))) {
      toast("info", "Avatar changed");
      setSeeds(null);
    }
  };
  return (
    <div className="avatar-picker" role="group" aria-label="Pick an avatar">
      {seeds.map((seed, i) => (
        <button key={seed} type="button" className="avatar-choice" aria-label={`Avatar ${i + 1}`} onClick={() => void pick(seed)}>
          <img src={api.avatarURL(me.username, seed)} alt="" width={56} height={56} />
        </button>
      ))}
      <div className="actions">
        <button type="button" className="small" onClick={() => setSeeds(randomSeeds())}>
          Other avatars
        </button>
        <button type="button" className="small" onClick={() => setSeeds(null)}>
          Cancel
        </button>
      </div>
    </div>
  );
}

export function Settings() {
  const { me, home, deleteAccount, go } = useSession();
  const run = useAction();
  const toast = useToast();
  const [name, setName] = useState(me.displayName);
  useEffect(() => setName(me.displayName), [me.displayName]);
  const [oldPassword, setOldPassword] = useState("");
  const [newPassword, setNewPassword] = useState("");
  const [deletePassword, setDeletePassword] = useState("");

  const saveProfile = async (e: FormEvent) => {
    e.preventDefault();
    if (await run(home.updateProfile({ displayName: name }))) toast("info", "Profile saved");
  };
  const changePassword = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await run(home.changePassword(oldPassword, newPassword).then(() => true));
    if (ok) {
      toast("info", "Password changed");
      setOldPassword("");
      setNewPassword("");
    }
  };
  return (
    <div className="settings">
      <header className="settings-header">
        <button type="button" className="icon back" aria-label="Back to chats" title="Back to chats" onClick={() => go({ page: "welcome" })}>
          <Icon name="back" />
        </button>
        <h2>Profile and settings</h2>
      </header>
      <form className="card" onSubmit={saveProfile} aria-label="Profile">
        <div className="profile-row">
          <Avatar user={me} size={88} />
          <div>
            <div className="muted small">Username</div>
            <div className="username">@{me.username}</div>
            <div className="muted small">Your avatar was drawn at random when you signed up.</div>
          </div>
        </div>
        <AvatarPicker />
        <label>
          Display name
          <input value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <div className="actions">
          <button type="submit" className="primary" disabled={name.trim() === me.displayName}>
            Save profile
          </button>
        </div>
      </form>
      <form className="card" onSubmit={changePassword} aria-label="Password">
        <h3>Password</h3>
        <label>
          Current password
          <input type="password" value={oldPassword} onChange={(e) => setOldPassword(e.target.value)} autoComplete="current-password" required />
        </label>
        <label>
          New password
          <input type="password" value={newPassword} onChange={(e) => setNewPassword(e.target.value)} autoComplete="new-password" required />
        </label>
        <div className="actions">
          <button type="submit">Change password</button>
        </div>
      </form>
      <form className="card danger-card" onSubmit={(e) => e.preventDefault()} aria-label="Delete account">
        <h3>Delete account</h3>
        <p className="muted">
          Your friendships, private chats and the group chats you own are deleted; your messages in other chats stay,
          signed by a deleted user. This cannot be undone.
        </p>
        <label>
          Password
          <input type="password" value={deletePassword} onChange={(e) => setDeletePassword(e.target.value)} autoComplete="current-password" />
        </label>
        <div className="actions">
          <ConfirmButton
            className="danger"
            title="Delete your account?"
            body="Everything listed above goes, and every session of yours ends."
            confirm="Delete my account for good"
            onConfirm={() => void run(deleteAccount(deletePassword))}
          >
            Delete my account
          </ConfirmButton>
        </div>
      </form>
    </div>
  );
}
