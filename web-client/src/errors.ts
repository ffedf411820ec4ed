// Turns protocol error codes into sentences for people. Codes are stable; the server's
// message is shown where it adds something.

import type { ErrorInfo } from './protocol';

export function describeError(error: ErrorInfo): string {
  const detail = error.message ? ` (${error.message})` : '';
  switch (error.code) {
    case 'rate_limited':
      return 'You are sending too fast; slow down for a moment.';
    case 'forbidden':
      return `Not allowed${detail}.`;
    case 'too_large':
      return `That is too long${detail}.`;
    case 'unauthorized':
      return 'Your session has expired. Sign in again.';
    case 'not_found':
      return `Not found${detail}.`;
    case 'conflict':
      return `Conflict${detail}.`;
    case 'unavailable':
      return 'The server cannot take this right now.';
    case 'timeout':
      return 'The server did not answer in time.';
    case 'offline':
      return 'You are offline.';
    case 'bad_request':
      return `The server refused the request${detail}.`;
    default:
      return error.message || 'Something went wrong.';
  }
}

/** Why the server turned us away: refused after having been in, the token expired; otherwise the sign-in failed. */
export function describeRefusal(message: string, wasIn: boolean): string {
  if (wasIn) return 'Your session has expired. Sign in again.';
  return `Sign-in refused: ${message.replace(/^unauthorized:?\s*/, '') || 'unauthorized'}`;
}
