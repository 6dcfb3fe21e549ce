// The operator console (console/): building it with Vite and serving the
// static build, with a generated config.json naming the project to talk to.
// Used by `npm start` (port 54323) and by the browser tests.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { repoRoot } from './paths.ts';

const consoleDir = path.join(repoRoot, 'console');
const consoleDistDir = path.join(consoleDir, 'dist');

/** What the console reads from `config.json` (console/src/config.ts). */
export interface ConsoleConfigJson {
  functionsUrl: string;
  anonKey: string;
  supabaseUrl?: string;
}

/** `vite build` of the console into `outDir` (default console/dist); returns outDir. */
export async function buildConsole(outDir: string = consoleDistDir): Promise<string> {
  const { build } = await import('vite');
  await build({
    configFile: path.join(consoleDir, 'vite.config.ts'),
    build: { outDir, emptyOutDir: true },
    logLevel: 'warn',
  });
  return outDir;
}

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

function originOf(url: string | undefined): string {
  return url ? new URL(url).origin : '';
}

export interface ConsoleServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves a console build on 127.0.0.1:`port`: its files, `config.json`, and
 * index.html for any other path. A content security policy lets the page
 * talk to the functions (and Supabase Auth) only.
 */
export async function serveConsole(options: {
  distDir?: string;
  port: number;
  host?: string;
  config: ConsoleConfigJson;
}): Promise<ConsoleServer> {
  const distDir = options.distDir ?? consoleDistDir;
  if (!existsSync(path.join(distDir, 'index.html'))) throw new Error(`no console build in ${distDir}`);
  const host = options.host ?? '127.0.0.1';
  const connect = ["'self'", originOf(options.config.functionsUrl), originOf(options.config.supabaseUrl)].filter(
    Boolean,
  );
  const headers = {
    'content-security-policy': [
      "default-src 'self'",
      `connect-src ${connect.join(' ')}`,
      "img-src 'self' data: blob:",
      "style-src 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'self'",
    ].join('; '),
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
  };
  const configBody = JSON.stringify(options.config);

  const server = http.createServer(async (request, response) => {
    const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://console').pathname);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (pathname === '/config.json') {
      response.writeHead(200, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' });
      response.end(configBody);
      return;
    }
    const file = path.join(distDir, path.normalize(pathname));
    const inside = file.startsWith(distDir + path.sep);
    const target = inside && existsSync(file) && !file.endsWith(path.sep) && path.extname(file)
      ? file
      : path.join(distDir, 'index.html');
    try {
      const body = await readFile(target);
      const immutable = target.includes(`${path.sep}assets${path.sep}`);
      response.writeHead(200, {
        ...headers,
        'content-type': contentTypes[path.extname(target)] ?? 'application/octet-stream',
        'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      });
      response.end(request.method === 'HEAD' ? undefined : body);
    } catch {
      response.writeHead(404, headers).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  return {
    url: `http://${host}:${options.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
