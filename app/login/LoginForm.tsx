"use client";
import { useState, type FormEvent } from "react";

export function LoginForm({ next, canSignUp, firstAccount }: { next: string; canSignUp: boolean; firstAccount: boolean }) {
  const [mode, setMode] = useState<"login" | "signup">(firstAccount ? "signup" : "login");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const res = await fetch(`/api/auth/${mode}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: form.get("name"), password: form.get("password") }),
      });
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { error?: string };
        setError(body.error ?? `${mode === "login" ? "logging in" : "signing up"} failed (HTTP ${res.status})`);
        return;
      }
      // A full navigation, so every page and query starts again as this user.
      window.location.assign(next);
    } finally {
      setBusy(false);
    }
  }

  const signingUp = mode === "signup";
  return (
    <main className="login-page">
      <div className="login-card">
        <h1>MoE Studio</h1>
        <div className="muted">{firstAccount ? "Create the first account on this server." : signingUp ? "Create an account." : "Log in to see your workflows."}</div>
        <form onSubmit={submit}>
          <label>
            User name
            <input name="name" autoComplete="username" required maxLength={64} autoFocus />
          </label>
          <label>
            Password
            <input name="password" type="password" autoComplete={signingUp ? "new-password" : "current-password"} required minLength={signingUp ? 8 : 1} maxLength={1024} />
          </label>
          {error && (
            <div className="banner error" role="alert">
              {error}
            </div>
          )}
          <button className="primary" type="submit" disabled={busy}>
            {signingUp ? "Create account" : "Log in"}
          </button>
        </form>
        {!firstAccount && (
          <div className="switch muted">
            {signingUp ? (
              <>
                Have an account?{" "}
                <button type="button" className="linklike" onClick={() => setMode("login")}>
                  Log in
                </button>
              </>
            ) : canSignUp ? (
              <>
                New here?{" "}
                <button type="button" className="linklike" onClick={() => setMode("signup")}>
                  Create an account
                </button>
              </>
            ) : (
              "Accounts are made by this server's admin."
            )}
          </div>
        )}
      </div>
    </main>
  );
}
