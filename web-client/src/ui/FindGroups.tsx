import { useEffect, useRef, useState } from 'preact/hooks';
import type { ChatClient } from '../chat';
import { LIMITS, groupConversationId, type FoundGroup } from '../protocol';
import { Avatar } from './Avatar';

/** Typing waits this long before asking, so a word is one search rather than one a letter. */
const TYPE_DELAY_MS = 250;

interface Props {
  client: ChatClient;
  /** A join is in flight (the dialog's). */
  busy: boolean;
  /** Joins the group by id; the dialog shows a refusal and closes on success. */
  onJoin(groupId: string): void;
  /** A group already ours was opened. */
  onOpened(): void;
}

/**
 * Public group discovery (`group:find`): names starting with what is typed, in any case, with
 * their topic and member count; Join, or Open for groups already ours; More while the server
 * has a cursor. With nothing typed it lists public groups from the start of the alphabet.
 */
export function FindGroups({ client, busy, onJoin, onOpened }: Props) {
  const [query, setQuery] = useState('');
  const [searched, setSearched] = useState<string | null>(null);
  const [groups, setGroups] = useState<FoundGroup[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  /** Answers to older searches than the newest are dropped. */
  const seq = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout>>();

  const search = async (prefix: string, more: boolean) => {
    clearTimeout(timer.current);
    const mine = ++seq.current;
    setLoading(true);
    setError(null);
    const answer = await client.findGroups(prefix, more ? cursor : undefined);
    if (mine !== seq.current) return;
    setLoading(false);
    if (typeof answer === 'string') {
      setError(answer);
      return;
    }
    setSearched(prefix);
    setGroups(more ? [...groups, ...answer.groups.filter((g) => !groups.some((h) => h.id === g.id))] : answer.groups);
    setCursor(answer.cursor);
  };

  useEffect(() => {
    void search('', false);
    return () => {
      clearTimeout(timer.current);
      seq.current++;
    };
  }, []);

  return (
    <section class="find-groups" aria-labelledby="find-groups-title">
      <h3 class="contact-section-title" id="find-groups-title">
        Public groups
      </h3>
      <form
        class="search-form"
        role="search"
        aria-label="Public groups"
        onSubmit={(e) => {
          e.preventDefault();
          void search(query, false);
        }}
      >
        <input
          type="search"
          aria-label="Search public groups"
          placeholder="Group name"
          autoFocus
          autocapitalize="off"
          spellcheck={false}
          maxLength={LIMITS.groupName}
          value={query}
          onInput={(e) => {
            const q = e.currentTarget.value;
            setQuery(q);
            clearTimeout(timer.current);
            timer.current = setTimeout(() => void search(q, false), TYPE_DELAY_MS);
          }}
        />
        <button class="btn btn-primary" type="submit" disabled={loading}>
          Search
        </button>
      </form>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <div aria-live="polite" aria-busy={loading}>
        {searched !== null && groups.length === 0 && !error && (
          <p class="muted" data-testid="find-empty">
            {searched.trim() ? `No public group's name starts with “${searched.trim()}”.` : 'No public groups yet.'}
          </p>
        )}
        {groups.length > 0 && (
          <ul class="found-list" aria-label="Public groups found" data-testid="found-groups">
            {groups.map((g) => {
              const mine = client.conversations.has(groupConversationId(g.id));
              const count = Number.isFinite(g.memberCount) ? g.memberCount : 0;
              return (
                <li key={g.id} class="found" data-group={g.id}>
                  <Avatar name={g.name} group size="sm" />
                  <span class="found-text">
                    <span class="found-name">{g.name}</span>
                    {g.topic && <span class="found-topic muted small">{g.topic}</span>}
                    <span class="found-count muted small">
                      {count} member{count === 1 ? '' : 's'}
                    </span>
                  </span>
                  {mine ? (
                    <button
                      class="btn btn-ghost btn-small"
                      aria-label={`Open ${g.name}`}
                      onClick={() => {
                        client.openConversation(groupConversationId(g.id));
                        onOpened();
                      }}
                    >
                      Open
                    </button>
                  ) : (
                    <button class="btn btn-primary btn-small" disabled={busy} aria-label={`Join ${g.name}`} onClick={() => onJoin(g.id)}>
                      Join
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
        )}
      </div>
      {cursor && (
        <button class="btn btn-ghost btn-block" disabled={loading} aria-label="More groups" onClick={() => void search(searched ?? '', true)}>
          More
        </button>
      )}
    </section>
  );
}
