import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { ChatClient, Conversation } from '../chat';
import { LIMITS } from '../protocol';
import { SendIcon } from './icons';

const drafts = new Map<string, string>();

export function Composer({ client, c }: { client: ChatClient; c: Conversation }) {
  const [text, setText] = useState(drafts.get(c.id) ?? '');
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);
  const length = [...text].length;

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
  }, [text]);

  useEffect(() => {
    // Focus the composer when a conversation opens on a wide screen (not on phones,
    // where the keyboard would cover the messages).
    if (window.matchMedia('(min-width: 768px)').matches) ref.current?.focus();
  }, [c.id]);

  const update = (value: string) => {
    setText(value);
    drafts.set(c.id, value);
    setError(null);
    if (value.trim()) client.typing(c.id);
    else client.sendTypingStop();
  };

  const submit = (e?: Event) => {
    e?.preventDefault();
    const problem = client.send(c.id, text);
    if (problem) return setError(problem);
    if (!text.trim()) return;
    update('');
    client.sendTypingStop();
    ref.current?.focus();
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  };

  const over = length > LIMITS.body;
  return (
    <form class="composer" onSubmit={submit}>
      {error && (
        <p class="composer-error" role="alert">
          {error}
        </p>
      )}
      <div class="composer-row">
        <label class="sr-only" for="composer-input">
          Message {client.title(c)}
        </label>
        <textarea
          id="composer-input"
          ref={ref}
          rows={1}
          value={text}
          placeholder={`Message ${client.title(c)}`}
          onInput={(e) => update(e.currentTarget.value)}
          onKeyDown={onKeyDown}
          onBlur={() => client.sendTypingStop()}
          aria-describedby="composer-help"
          aria-invalid={over}
        />
        <button class="send-btn" type="submit" aria-label="Send" disabled={!text.trim() || over}>
          <SendIcon size={18} />
        </button>
      </div>
      <p id="composer-help" class="composer-help">
        <span>Enter to send · Shift+Enter for a new line</span>
        {length > LIMITS.body - 500 && (
          <span class={over ? 'over' : ''}>
            {length}/{LIMITS.body}
          </span>
        )}
      </p>
    </form>
  );
}
