// Copies the Socket.IO Admin UI's page (the npm package @socket.io/admin-ui, ui/dist) to
// dist/admin, where chat-server serves it at /admin/ when CHAT_ADMIN_UI_USER and
// CHAT_ADMIN_UI_PASSWORD are set (docs/admin-ui.md). Run by `npm run build`, after Vite
// (which empties dist/). Source maps are left out: 3.5 MB nobody serving the page needs.

import { cpSync, existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const pkg = dirname(require.resolve('@socket.io/admin-ui/package.json'));
const from = join(pkg, 'ui', 'dist');
const to = resolve(here, '..', 'dist', 'admin');
if (!existsSync(join(from, 'index.html'))) {
  throw new Error(`no Admin UI page in ${from}`);
}
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true, filter: (src) => !src.endsWith('.map') });
console.log(`admin ui: ${from} -> ${to}`);
