import { defineConfig } from 'vite';

// `npm run dev` serves the page on :5173 and forwards Socket.IO to a chat-server on :3000
// (override with CHAT_DEV_SERVER), so the page still connects to its own origin.
const devServer = process.env.CHAT_DEV_SERVER ?? 'http://127.0.0.1:3000';

export default defineConfig({
  // Relative asset URLs: dist/ works wherever chat-server mounts it.
  base: './',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', target: 'es2022', sourcemap: true },
  server: {
    proxy: {
      '/socket.io': { target: devServer, ws: true },
      '/api': { target: devServer },
    },
  },
});
