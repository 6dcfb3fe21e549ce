import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The console is a static site: `vite build console` writes console/dist, which any static host serves.
// Relative asset paths, so it also works under a sub-path of a host.
export default defineConfig({
  root: import.meta.dirname,
  base: './',
  plugins: [react()],
  envPrefix: 'SWITCHYARD_CONSOLE_',
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true },
  server: { port: 54323, strictPort: true, host: '127.0.0.1' },
  preview: { port: 54323, strictPort: true, host: '127.0.0.1' },
});
