import { useId, useState, type FormEvent } from "react";
import { cleanToken, signIn } from "../auth/session";
import { fetchPrincipal } from "../auth/whoami";

export function SignInPage({ notice }: { notice?: string | null }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = useId();

  async function submit(e: FormEvent) {
    e.preventDefault();
    const t = cleanToken(token);
    if (!t) {
      setError("Paste an API token.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await fetchPrincipal(t);
      signIn(t);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin" id="main">
      <h1>HyperSDK</h1>
      <form className="card" onSubmit={submit} noValidate>
        <h2>Sign in</h2>
        {notice && !error && (
          <div className="alert alert-info" role="status">
            {notice}
          </div>
        )}
        <div className="field">
          <label htmlFor={`${id}-token`}>API token</label>
          <input
            id={`${id}-token`}
            name="token"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={token}
            onChange={(e) => setToken(e.target.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby={`${id}-hint${error ? ` ${id}-err` : ""}`}
            autoFocus
          />
          <span className="hint" id={`${id}-hint`}>
            From the daemon's <code>api.tokens</code>, or <code>&lt;data_dir&gt;/admin.token</code>. Kept for this tab only.
          </span>
          {error && (
            <span className="error" id={`${id}-err`} role="alert">
              {error}
            </span>
          )}
        </div>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
