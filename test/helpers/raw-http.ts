import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends HTTP/1.1 requests one after another on ONE TCP connection and reads
 * each response by its content-length. fetch hides a server that closes
 * keep-alive connections (it reconnects silently); a raw socket does not:
 * the second request fails when the first response closed the connection.
 */
export async function requestsOnOneConnection(
  url: string,
  requests: { method: string; path: string; headers: Record<string, string>; body?: string }[],
): Promise<RawResponse[]> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffered = Buffer.alloc(0);
  let closed = false;
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((waiter) => waiter());
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    wake();
  });
  socket.on('close', () => {
    closed = true;
    wake();
  });
  socket.on('error', () => {});
  const more = () => new Promise<void>((resolve) => waiters.push(resolve));

  const responses: RawResponse[] = [];
  try {
    for (const request of requests) {
      if (closed) throw new Error(`the server closed the connection after ${responses.length} response(s)`);
      const body = Buffer.from(request.body ?? '');
      const head = [
        `${request.method} ${request.path} HTTP/1.1`,
        `host: ${hostname}:${port}`,
        ...Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`),
        `content-length: ${body.length}`,
      ];
      socket.write(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]));
      let headEnd = buffered.indexOf('\r\n\r\n');
      while (headEnd < 0) {
        if (closed) {
          throw new Error(`the server closed the connection before answering request ${responses.length + 1}`);
        }
        await more();
        headEnd = buffered.indexOf('\r\n\r\n');
      }
      const [statusLine, ...headerLines] = buffered.subarray(0, headEnd).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(headerLines.map((line) => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
      }));
      const length = Number(headers['content-length']);
      if (!Number.isInteger(length)) {
        throw new Error(`expected a content-length response, got: ${statusLine} ${JSON.stringify(headers)}`);
      }
      while (buffered.length < headEnd + 4 + length) {
        if (closed) throw new Error('the server closed the connection mid-body');
        await more();
      }
      responses.push({
        status: Number(statusLine.split(' ')[1]),
        headers,
        body: buffered.subarray(headEnd + 4, headEnd + 4 + length).toString('utf8'),
      });
      buffered = buffered.subarray(headEnd + 4 + length);
    }
  } finally {
    socket.destroy();
  }
  return responses;
}
