// @ts-check
import { defineConfig } from 'astro/config';
import tailwindcss from '@tailwindcss/vite';

// A static page; the API serves it (STATIC_DIR) or the ingress does. PUBLIC_* variables
// (PUBLIC_API_BASE, PUBLIC_PGADMIN_URL, PUBLIC_REDIS_COMMANDER_URL, PUBLIC_JAEGER_URL) are read at build time.
export default defineConfig({
  output: 'static',
  devToolbar: { enabled: false },
  build: { inlineStylesheets: 'never' },
  vite: {
    plugins: [tailwindcss()],
  },
});
