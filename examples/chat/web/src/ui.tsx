// Small building blocks shared by the screens: avatars, badges, a
// two-step confirm button, toasts and the action runner that reports
// refused actions as toasts.
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";

/** The parts of a user the UI shows. */
export interface Person {
  readonly id: string;
  readonly username: string;
  readonly displayName: string;
  readonly avatar: string;
}

/** Orders decimal ids (strings on the wire) numerically. */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * A user's generated avatar (served by /api/avatar/{username}.png). With
 * dot, a green presence dot on its corner, labelled with dot's text
 * ("online", "in the chat"); no dot, or an empty one, shows none.
 */
export function Avatar({ user, size = 36, dot }: { user: Person | null | undefined; size?: number; dot?: string }) {
  const img = user ? (
    <img className="avatar" src={user.avatar} alt="" width={size} height={size} title={user.displayName} loading="lazy" />
  ) : (
    <span className="avatar avatar-empty" style={{ width: size, height: size }} />
  );
  if (!dot) return img;
  return (
    <span className="avatar-wrap" style={{ width: size, height: size }}>
      {img}
      <span className="presence-dot" role="img" aria-label={dot} title={dot} />
    </span>
  );
}

/** "Ann is typing…", "Ann and Bob are typing…", "3 people are typing…". */
export function typingText(names: readonly string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

/** The round icon of a group chat: its initials. */
export function GroupIcon({ name, size = 36 }: { name: string; size?: number }) {
  const letters = name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0]?.toUpperCase() ?? "")
    .join("");
  return (
    <span className="avatar group-icon" style={{ width: size, height: size, fontSize: size * 0.4 }} aria-hidden>
      {letters || "#"}
    </span>
  );
}

/** A count bubble; nothing for zero. */
export function Badge({ count, label }: { count: number; label?: string }) {
  if (count <= 0) return null;
  return (
    <span className="badge" aria-label={label ? `${count} ${label}` : String(count)}>
      {count > 99 ? "99+" : count}
    </span>
  );
}

/**
 * A button that asks to be clicked again before it acts: destructive
 * actions without a modal dialog.
 */
export function ConfirmButton({
  children,
  confirm = "Click again to confirm",
  onConfirm,
  className = "danger",
  label,
  title,
}: {
  children: ReactNode;
  confirm?: string;
  onConfirm: () => void;
  className?: string;
  /** The accessible name, for icon buttons. */
  label?: string;
  title?: string;
}) {
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!armed) return;
    const t = setTimeout(() => setArmed(false), 4000);
    return () => clearTimeout(t);
  }, [armed]);
  return (
    <button
      type="button"
      className={`${className}${armed ? " armed" : ""}`}
      aria-label={armed ? confirm : label}
      title={title}
      onClick={() => {
        if (armed) {
          setArmed(false);
          onConfirm();
        } else setArmed(true);
      }}
    >
      {armed ? confirm : children}
    </button>
  );
}

/** When something happened, briefly: "14:05", "Mon", "3 Mar". */
export function shortTime(iso: string | null | undefined): string {
  const d = parseTime(iso);
  if (!d) return "";
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (now.getTime() - d.getTime() < 6 * 86400_000) return d.toLocaleDateString([], { weekday: "short" });
  return d.toLocaleDateString([], { day: "numeric", month: "short" });
}

/** The day of a timestamp, for separators: "Today", "Monday 3 March". */
export function dayLabel(iso: string): string {
  const d = parseTime(iso);
  if (!d) return "";
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return "Today";
  const yesterday = new Date(now.getTime() - 86400_000);
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long" });
}

/** Go's zero time and unparsable strings give null. */
export function parseTime(iso: string | null | undefined): Date | null {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) || d.getFullYear() < 2000 ? null : d;
}

export function clockTime(iso: string): string {
  return parseTime(iso)?.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) ?? "";
}

// Toasts.

interface Toast {
  readonly id: number;
  readonly kind: "info" | "error";
  readonly text: string;
}

type Push = (kind: Toast["kind"], text: string) => void;

const ToastContext = createContext<Push>(() => {});

/** Shows the toasts pushed by its children (useToast), each for a few seconds. */
export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<readonly Toast[]>([]);
  const next = useRef(0);
  const dismiss = useCallback((id: number) => setToasts((ts) => ts.filter((t) => t.id !== id)), []);
  const push = useCallback<Push>(
    (kind, text) => {
      const id = ++next.current;
      setToasts((ts) => [...ts.slice(-4), { id, kind, text }]);
      setTimeout(() => dismiss(id), kind === "error" ? 8000 : 6000);
    },
    [dismiss],
  );
  return (
    <ToastContext.Provider value={push}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`}>
            <span>{t.text}</span>
            <button type="button" className="icon" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
              <Icon name="close" />
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

/** Pushes a toast. */
export function useToast(): Push {
  return useContext(ToastContext);
}

/**
 * Returns run(promise): it resolves with the action's result, or with
 * undefined after showing the refusal (the server's message) as a toast.
 */
export function useAction(): <T>(p: Promise<T>) => Promise<T | undefined> {
  const toast = useToast();
  return useCallback(
    async <T,>(p: Promise<T>): Promise<T | undefined> => {
      try {
        return await p;
      } catch (err) {
        toast("error", err instanceof Error && err.message ? err.message : String(err));
        return undefined;
      }
    },
    [toast],
  );
}

// Icons: inline SVG strokes, so that they look the same without emoji
// fonts.
const ICONS = {
  profile: (
    <>
      <circle cx="12" cy="8" r="4" />
      <path d="M4 21c0-4 3.6-6 8-6s8 2 8 6" />
    </>
  ),
  logout: (
    <>
      <path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4" />
      <path d="M16 17l5-5-5-5M21 12H9" />
    </>
  ),
  trash: (
    <>
      <path d="M3 6h18M8 6V4h8v2M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6" />
      <path d="M10 11v6M14 11v6" />
    </>
  ),
  message: <path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z" />,
  edit: (
    <>
      <path d="M12 20h9" />
      <path d="M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z" />
    </>
  ),
  close: <path d="M18 6 6 18M6 6l12 12" />,
} as const;

/** A 24×24 stroke icon, sized by the font. */
export function Icon({ name }: { name: keyof typeof ICONS }) {
  return (
    <svg className="svg-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      {ICONS[name]}
    </svg>
  );
}

/** A button of a RequestItem. */
export interface Choice {
  readonly label: string;
  readonly primary?: boolean;
  readonly onClick: () => void;
}

/** A pending request in a list: an icon, what it is, what to do about it. */
export function RequestItem({ icon, children, choices = [] }: { icon: ReactNode; children: ReactNode; choices?: readonly Choice[] }) {
  return (
    <li className="request">
      {icon}
      <div className="request-body">
        {children}
        {choices.length > 0 && (
          <div className="actions">
            {choices.map((c) => (
              <button key={c.label} type="button" className={c.primary ? "primary small" : "small"} onClick={c.onClick}>
                {c.label}
              </button>
            ))}
          </div>
        )}
      </div>
    </li>
  );
}
