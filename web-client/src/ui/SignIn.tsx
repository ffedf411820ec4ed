import { useState } from 'preact/hooks';
import { isValidUserId } from '../protocol';
import type { Credentials } from '../settings';
import { Field, hintId } from './Field';
import { ChatIcon } from './icons';

interface Props {
  initial: Credentials | null;
  error: string | null;
  onSubmit(credentials: Credentials): void;
  onSettings(): void;
}

export function SignIn({ initial, error, onSubmit, onSettings }: Props) {
  const [user, setUser] = useState(initial?.user ?? '');
  const [token, setToken] = useState(initial?.token ?? '');
  const [problem, setProblem] = useState<string | null>(null);

  const submit = (e: Event) => {
    e.preventDefault();
    const u = user.trim();
    const t = token.trim();
    if (!t && !u) return setProblem('Enter a user name or a token.');
    if (!t && !isValidUserId(u)) return setProblem('User names are 1–64 letters, digits, “.”, “_” or “-”.');
    setProblem(null);
    onSubmit({ user: u, token: t });
  };

  const shown = problem ?? error;
  return (
    <main class="signin">
      <form class="signin-card" onSubmit={submit} aria-labelledby="signin-title" noValidate>
        <div class="signin-logo" aria-hidden="true">
          <ChatIcon size={28} />
        </div>
        <h1 id="signin-title">Sign in to Chat</h1>
        <p class="muted">Use a user name on a development server, or a token where sign-in is required.</p>
        {shown && (
          <p class="form-error" role="alert">
            {shown}
          </p>
        )}
        <Field id="signin-user" label="User name" hint="Development servers only (no password).">
          <input
            id="signin-user"
            aria-describedby={hintId('signin-user')}
            name="user"
            autocomplete="username"
            autocapitalize="off"
            spellcheck={false}
            value={user}
            onInput={(e) => setUser(e.currentTarget.value)}
            placeholder="alice"
            maxLength={64}
          />
        </Field>
        <div class="or" aria-hidden="true">
          <span>or</span>
        </div>
        <Field id="signin-token" label="Access token (JWT)" hint="Used instead of the user name when filled in.">
          <textarea
            id="signin-token"
            aria-describedby={hintId('signin-token')}
            name="token"
            rows={2}
            spellcheck={false}
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            placeholder="eyJhbGciOiJIUzI1NiIs…"
          />
        </Field>
        <button class="btn btn-primary btn-block" type="submit">
          Sign in
        </button>
        <button class="btn btn-ghost btn-block" type="button" onClick={onSettings}>
          Connection settings
        </button>
      </form>
    </main>
  );
}
