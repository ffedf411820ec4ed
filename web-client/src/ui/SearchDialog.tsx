import { useState } from 'preact/hooks';
import type { ChatClient } from '../chat';
import { formatListTime } from '../format';
import { LIMITS, type SearchResult } from '../protocol';
import { Dialog } from './Dialog';

/** Full-text search over the user's conversations (the server's archive); a result opens its conversation. */
export function SearchDialog({ client, onClose }: { client: ChatClient; onClose(): void }) {
  const [query, setQuery] = useState('');
  const [searched, setSearched] = useState<string | null>(null);
  const [results, setResults] = useState<SearchResult[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (more: boolean) => {
    setBusy(true);
    setError(null);
    const q = more && searched ? searched : query;
    const answer = await client.search(q, more ? cursor : undefined);
    setBusy(false);
    if (typeof answer === 'string') {
      setError(answer);
      return;
    }
    setSearched(q);
    setResults(more ? [...results, ...answer.results] : answer.results);
    setCursor(answer.cursor);
  };

  const label = (r: SearchResult) =>
    r.conversation.name ?? r.conversation.id.replace(/^dm:/, '').split(':').filter((u) => u !== client.me).join(', ');

  return (
    <Dialog title="Search messages" onClose={onClose}>
      <form
        class="search-form"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          void run(false);
        }}
      >
        <input
          type="search"
          aria-label="Search messages"
          placeholder='Words, "a phrase", -excluded'
          maxLength={LIMITS.searchQuery}
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
          autoFocus
        />
        <button class="btn btn-primary" type="submit" disabled={busy}>
          Search
        </button>
      </form>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {searched !== null && results.length === 0 && !error && <p class="muted">No messages match “{searched}”.</p>}
      {results.length > 0 && (
        <ul class="search-results" aria-label="Search results">
          {results.map((r) => (
            <li key={`${r.conversation.id}/${r.message.id}`}>
              <button
                class="search-result"
                data-conversation={r.conversation.id}
                onClick={() => {
                  client.openFound(r.conversation.id);
                  onClose();
                }}
              >
                <span class="search-result-top">
                  <span class="search-result-where">{label(r)}</span>
                  <span class="conv-time">{formatListTime(r.message.ts)}</span>
                </span>
                <span class="search-result-body">
                  <span class="preview-who">{r.message.from === client.me ? 'You' : r.message.from}: </span>
                  {r.message.body}
                </span>
              </button>
            </li>
          ))}
        </ul>
      )}
      {cursor && (
        <button class="btn btn-block" disabled={busy} onClick={() => void run(true)}>
          More results
        </button>
      )}
    </Dialog>
  );
}
