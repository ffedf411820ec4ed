import { useEffect, useState } from 'preact/hooks';
import type { ChatClient } from '../chat';

function useRerender(): () => void {
  const [, set] = useState(0);
  return () => set((n) => n + 1);
}

/** Re-renders the component whenever the client changes. */
export function useClient(client: ChatClient): ChatClient {
  const rerender = useRerender();
  useEffect(() => client.subscribe(rerender), [client]);
  return client;
}

/** Re-renders every `ms` milliseconds (relative times such as "last seen 3 min ago"). */
export function useTick(ms: number): void {
  const rerender = useRerender();
  useEffect(() => {
    const timer = setInterval(rerender, ms);
    return () => clearInterval(timer);
  }, [ms]);
}
