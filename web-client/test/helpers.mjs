// Test helpers: the real chat-server on a loopback port, the system Chromium through
// playwright-core, and waits with deadlines (never fixed sleeps).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const webDir = resolve(here, '..');
export const distDir = join(webDir, 'dist');
export const outputDir = join(webDir, 'test-output');
const repoDir = resolve(webDir, '..');

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * Starts chat-server on 127.0.0.1:0 serving dist/, and resolves once it logs "listening".
 * `extraEnv` adds or overrides variables (e.g. raised rate limits).
 */
export async function startServer(extraEnv = {}) {
  const bin = process.env.CHAT_SERVER_BIN ?? join(repoDir, 'target', 'debug', 'chat-server');
  if (!existsSync(bin)) {
    throw new Error(`chat-server not found at ${bin}: run \`cargo build -p chat-server\` or set CHAT_SERVER_BIN`);
  }
  if (!existsSync(join(distDir, 'index.html'))) {
    throw new Error(`no built page in ${distDir}: run \`npm run build\``);
  }
  const env = { ...process.env };
  delete env.CHAT_REDIS_URL;
  delete env.CHAT_REDIS_SENTINELS;
  delete env.CHAT_AUTH_SECRET;
  Object.assign(env, {
    CHAT_LISTEN: '127.0.0.1:0',
    CHAT_LOG_FORMAT: 'json',
    CHAT_WEB_DIR: distDir,
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    ...extraEnv,
  });
  const child = spawn(bin, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  // Never leave a server behind, even when the test process ends abruptly.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  child.once('exit', () => process.off('exit', killChild));
  const log = [];
  child.stderr.on('data', (chunk) => log.push(String(chunk)));
  const addr = await new Promise((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error(`chat-server did not log "listening" in 20s:\n${log.join('')}`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chat-server exited with ${code} before listening:\n${log.join('')}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      log.push(line + '\n');
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry?.fields?.message === 'listening' && typeof entry.fields.addr === 'string') {
        clearTimeout(timer);
        resolveAddr(entry.fields.addr);
      }
    });
  });
  const [host, port] = splitAddr(addr);
  if (!host.startsWith('127.') && host !== '::1' && host !== 'localhost') {
    child.kill('SIGKILL');
    throw new Error(`chat-server listens on ${addr}, not a loopback address`);
  }
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for a server that must keep its port). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/**
 * Starts a throwaway `redis-server` (`REDIS_SERVER_BIN`, default from the PATH) on a free
 * loopback port, without persistence, and resolves once it answers PING.
 * Returns `{url, stop()}`; the caller picks a random `CHAT_REDIS_PREFIX`.
 */
export async function startRedis() {
  const bin = process.env.REDIS_SERVER_BIN ?? 'redis-server';
  let lastErr;
  // The port may be taken between freePort() and the bind: try another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const killChild = () => child.kill('SIGKILL');
    process.once('exit', killChild);
    const log = [];
    child.stdout.on('data', (chunk) => log.push(String(chunk)));
    child.stderr.on('data', (chunk) => log.push(String(chunk)));
    const exited = new Promise((r) => child.once('exit', r));
    exited.then(() => process.off('exit', killChild));
    // Rejects if the process cannot be started or ends before answering.
    const died = new Promise((_, reject) => {
      child.once('error', (err) => reject(new Error(`cannot start ${bin}: ${err.message}`)));
      exited.then((code) => reject(new Error(`redis-server exited with ${code}`)));
    });
    died.catch(() => {});
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGKILL');
        await exited;
      }
    };
    try {
      await Promise.race([
        until(() => ping(port), { timeout: 10_000, interval: 50, message: `redis-server on port ${port} to answer PING` }),
        died,
      ]);
      return { url: `redis://127.0.0.1:${port}`, stop };
    } catch (err) {
      lastErr = new Error(`${err.message}\n${log.join('')}`);
      await stop();
    }
  }
  throw lastErr;
}

/** True when Redis on 127.0.0.1:`port` answers PING within a second. */
function ping(port) {
  return new Promise((resolvePing) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok) => {
      clearTimeout(timer);
      sock.destroy();
      resolvePing(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

function splitAddr(addr) {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), addr.slice(i + 1)];
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/**
 * A person in their own browser context, signed in as `user`.
 * `polling: true` turns on "Use long-polling only" in the settings before signing in; `query`
 * is added to the page's address (e.g. `?idle=1`).
 */
export async function signIn(browser, server, user, { viewport = DESKTOP, polling = false, mobile = false, query = '' } = {}) {
  const context = await browser.newContext({
    viewport,
    deviceScaleFactor: mobile ? 2 : 1,
    isMobile: mobile,
    hasTouch: mobile,
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(server.url + query);
  if (polling) {
    await page.getByRole('button', { name: 'Connection settings' }).click();
    await page.getByLabel('Use long-polling only').check();
    await page.getByRole('button', { name: 'Save' }).click();
  }
  await page.getByLabel('User name').fill(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitConnected(page);
  return { context, page, user, errors };
}

export async function waitConnected(page, timeout = 15_000) {
  await page.locator('[data-testid="connection"][data-status="connected"]').waitFor({ timeout });
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function until(check, { timeout = 10_000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${message} (last: ${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Opens the conversation whose list entry is titled `title`. */
export async function openConversation(page, title) {
  await page.locator('.conv-item', { has: page.locator('.conv-title', { hasText: title }) }).first().click();
  await page.locator('[data-testid="chat-title"]', { hasText: title }).waitFor();
}

export async function startDirect(page, user) {
  await page.getByRole('button', { name: 'New chat' }).first().click();
  await page.getByLabel('User id').fill(user);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await page.locator('[data-testid="chat-title"]', { hasText: user }).waitFor();
}

export async function send(page, text) {
  const box = page.locator('#composer-input');
  await box.fill(text);
  await box.press('Enter');
}

/** The message bubble (confirmed or pending) whose body is exactly `text`. */
export function bubble(page, text) {
  return page.locator('.message-rows .msg', { has: page.locator('.msg-body', { hasText: exact(text) }) });
}

function exact(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

export async function screenshot(page, name, options = {}) {
  mkdirSync(outputDir, { recursive: true });
  const path = join(outputDir, `${name}.png`);
  await page.screenshot({ path, ...options });
  return path;
}

/**
 * PostgreSQL from the host's packages (`apt-get install postgresql`) on a free loopback port,
 * in a fresh cluster under the system's temp directory; as the postgres user when root.
 * Resolves to `{url, stop}`.
 */
export async function startPostgres() {
  const { mkdtempSync, chmodSync, readdirSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { execFileSync } = await import('node:child_process');
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b));
  const bin = join('/usr/lib/postgresql', versions.at(-1), 'bin');
  const dir = mkdtempSync(join(tmpdir(), 'web-client-pg-'));
  chmodSync(dir, 0o755);
  const root = process.getuid?.() === 0;
  if (root) execFileSync('chown', ['postgres', dir]);
  // setpriv execs: killing the child kills PostgreSQL.
  const as = (cmd, args) =>
    root ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd, ...args]] : [cmd, args];
  const [icmd, iargs] = as(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C']);
  execFileSync(icmd, iargs, { stdio: 'ignore' });
  const port = await freePort();
  const [cmd, args] = as(join(bin, 'postgres'), ['-D', join(dir, 'data'), '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-k', dir]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  const exited = new Promise((r) => child.once('exit', r));
  await until(
    () =>
      new Promise((resolveUp) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolveUp(true);
        });
        s.on('error', () => resolveUp(false));
      }),
    { timeout: 30_000, interval: 100, message: `postgres on port ${port}` },
  );
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        await exited;
      }
      process.off('exit', killChild);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
