// The settings page: profile (display name, avatar), password, and account
// deletion.
import { useEffect, useState, type FormEvent } from "react";
import { useSession } from "./session";
import { Avatar, ConfirmButton, useAction, useToast } from "./ui";

export function Settings() {
  const { me, home, deleteAccount } = useSession();
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
      <h2>Profile and settings</h2>
      <form className="card" onSubmit={saveProfile} aria-label="Profile">
        <div className="profile-row">
          <Avatar user={me} size={88} />
          <div>
            <div className="muted small">Username</div>
            <div className="username">@{me.username}</div>
            <div className="muted small">Your avatar is drawn from your username.</div>
          </div>
        </div>
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
            confirm="Really delete my account"
            onConfirm={() => void run(deleteAccount(deletePassword))}
          >
            Delete my account
          </ConfirmButton>
        </div>
      </form>
    </div>
  );
}
