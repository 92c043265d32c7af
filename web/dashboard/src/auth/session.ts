// The API token lives in memory and in sessionStorage (so a reload of the
// tab keeps the session, closing the tab ends it). Never in localStorage,
// which outlives the tab and is shared by every tab of the origin, and
// never in a URL, which lands in history, logs and Referer headers.

const storageKey = "hypersdk.token";

export interface Session {
  token: string | null;
  /** Why the last session ended, shown on the sign-in screen. */
  endedBecause: string | null;
}

type Listener = () => void;

function readStored(): string | null {
  try {
    return globalThis.sessionStorage?.getItem(storageKey) ?? null;
  } catch {
    return null; // storage disabled: memory only
  }
}

let current: Session = { token: readStored(), endedBecause: null };
const listeners = new Set<Listener>();

function publish(next: Session): void {
  current = next;
  for (const l of listeners) l();
}

export function getSession(): Session {
  return current;
}

export function getToken(): string | null {
  return current.token;
}

export function subscribe(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function signIn(token: string): void {
  try {
    globalThis.sessionStorage?.setItem(storageKey, token);
  } catch {
    // memory only
  }
  publish({ token, endedBecause: null });
}

export function signOut(reason: string | null = null): void {
  try {
    globalThis.sessionStorage?.removeItem(storageKey);
  } catch {
    // nothing stored
  }
  publish({ token: null, endedBecause: reason });
}

/** Normalises what a person pastes: surrounding blanks and a "Bearer " prefix. */
export function cleanToken(input: string): string {
  return input.trim().replace(/^bearer\s+/i, "").trim();
}
