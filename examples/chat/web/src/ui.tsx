// Small building blocks shared by the screens: avatars, badges, a
// confirm dialog, toasts and the action runner that reports refused
// actions as toasts.
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
 * A button whose action is confirmed first in a modal dialog: title asks
 * the question, body says what follows, and the dialog's confirm button
 * (labelled confirm) acts; Cancel, Escape or a click outside do nothing.
 */
export function ConfirmButton({
  children,
  confirm,
  title: question,
  body,
  onConfirm,
  className = "danger",
  label,
  hint,
}: {
  children: ReactNode;
  /** The dialog's confirm button, e.g. "Delete". */
  confirm: string;
  /** The dialog's question, e.g. "Delete the chat Team?". */
  title: string;
  /** What the action does, under the question. */
  body?: ReactNode;
  onConfirm: () => void;
  className?: string;
  /** The accessible name, for icon buttons. */
  label?: string;
  /** The button's tooltip. */
  hint?: string;
}) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" className={className} aria-label={label} title={hint} onClick={() => setOpen(true)}>
        {children}
      </button>
      {open && (
        <ConfirmDialog
          title={question}
          confirm={confirm}
          onClose={(ok) => {
            setOpen(false);
            if (ok) onConfirm();
          }}
        >
          {body}
        </ConfirmDialog>
      )}
    </>
  );
}

/** A modal confirmation dialog (the <dialog> element, opened with showModal). */
export function ConfirmDialog({
  title,
  confirm,
  children,
  onClose,
}: {
  title: string;
  confirm: string;
  children?: ReactNode;
  onClose: (confirmed: boolean) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const closed = useRef(false);
  const done = useCallback(
    (ok: boolean) => {
      if (closed.current) return;
      closed.current = true;
      ref.current?.close();
      onClose(ok);
    },
    [onClose],
  );
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby="dialog-title"
      onCancel={(e) => {
        e.preventDefault();
        done(false);
      }}
      onClick={(e) => {
        if (e.target === ref.current) done(false); // the backdrop
      }}
    >
      <div className="dialog-body">
        <h2 id="dialog-title">{title}</h2>
        {children && <div className="muted">{children}</div>}
        <div className="actions">
          <button type="button" onClick={() => done(false)} autoFocus>
            Cancel
          </button>
          <button type="button" className="danger-solid" onClick={() => done(true)}>
            {confirm}
          </button>
        </div>
      </div>
    </dialog>
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

/** How many toasts show at once: a new one pushes the oldest out. */
export const MAX_TOASTS = 3;

const ToastContext = createContext<Push>(() => {});
const ClearToastsContext = createContext<() => void>(() => {});

/**
 * Shows the toasts pushed by its children (useToast), at most MAX_TOASTS,
 * each for a few seconds; useClearToasts removes them all (sign-out).
 */
export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<readonly Toast[]>([]);
  const next = useRef(0);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());
  const dismiss = useCallback((id: number) => {
    clearTimeout(timers.current.get(id));
    timers.current.delete(id);
    setToasts((ts) => ts.filter((t) => t.id !== id));
  }, []);
  const push = useCallback<Push>(
    (kind, text) => {
      const id = ++next.current;
      setToasts((ts) => [...ts.slice(-(MAX_TOASTS - 1)), { id, kind, text }]);
      timers.current.set(
        id,
        setTimeout(() => dismiss(id), kind === "error" ? 8000 : 5000),
      );
    },
    [dismiss],
  );
  const clear = useCallback(() => {
    for (const t of timers.current.values()) clearTimeout(t);
    timers.current.clear();
    setToasts([]);
  }, []);
  return (
    <ToastContext.Provider value={push}>
      <ClearToastsContext.Provider value={clear}>
        {children}
        <div className="toasts" role="status" aria-live="polite" aria-label="Notifications">
          {toasts.map((t) => (
            <div key={t.id} className={`toast toast-${t.kind}`}>
              <span>{t.text}</span>
              <button type="button" className="icon" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
                <Icon name="close" />
              </button>
            </div>
          ))}
        </div>
      </ClearToastsContext.Provider>
    </ToastContext.Provider>
  );
}

/** Pushes a toast. */
export function useToast(): Push {
  return useContext(ToastContext);
}

/** Removes every toast. */
export function useClearToasts(): () => void {
  return useContext(ClearToastsContext);
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
  back: <path d="M15 18l-6-6 6-6" />,
  clock: (
    <>
      <circle cx="12" cy="12" r="9" />
      <path d="M12 7v5l3 2" />
    </>
  ),
  alert: (
    <>
      <circle cx="12" cy="12" r="9" />
      <path d="M12 7v6M12 16.5v.5" />
    </>
  ),
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
