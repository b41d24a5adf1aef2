// @ts-check
import { defineConfig } from 'astro/config';
import tailwindcss from '@tailwindcss/vite';

// A static page; the API serves it (STATIC_DIR) or the ingress does. PUBLIC_* variables
// (PUBLIC_API_BASE, PUBLIC_PGADMIN_URL, PUBLIC_REDIS_COMMANDER_URL, PUBLIC_JAEGER_URL) are read at build time;
// a tool without its URL gets no header link (see src/lib/tools.js).
//
// `npm run dev` proxies the API's paths to CACHEME_URL (default http://127.0.0.1:8000, where
// `cargo xtask dev` serves it), so the page keeps talking to its own origin.
const api = process.env.CACHEME_URL || 'http://127.0.0.1:8000';
const proxied = ['/products', '/cache', '/health', '/livez', '/readyz', '/openapi.json', '/docs', '/metrics'];

export default defineConfig({
  output: 'static',
  devToolbar: { enabled: false },
  build: { inlineStylesheets: 'never' },
  vite: {
    plugins: [tailwindcss()],
    server: {
      proxy: Object.fromEntries(proxied.map((p) => [p, { target: api, changeOrigin: true }])),
    },
  },
});
