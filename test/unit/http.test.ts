import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConnectionPool, readBody, send } from '../../src/common/http';

describe('send', () => {
  let server: http.Server;
  let base: URL;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/stall') {
        res.writeHead(200, { 'content-length': '10' });
        res.write('12345');
        return; // never finishes
      }
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('leaves no timeout listener behind on a kept-alive socket after each response', async () => {
    const pool = new ConnectionPool({ maxSockets: 1 });
    const sockets = new Set<import('node:net').Socket>();
    for (let i = 0; i < 20; i++) {
      const response = await send({
        method: 'GET',
        url: new URL('/ok', base),
        pool,
        idleTimeoutMs: 5000,
      });
      sockets.add(response.body.socket);
      expect((await readBody(response.body)).toString()).toBe('ok');
    }
    expect(sockets.size).toBe(1);
    const [socket] = sockets;
    await new Promise((resolve) => setImmediate(resolve));
    expect(socket.listenerCount('timeout')).toBeLessThanOrEqual(1);
    pool.destroy();
  });

  it('fails a body that stalls for the idle timeout with a transient ETIMEDOUT', async () => {
    const response = await send({
      method: 'GET',
      url: new URL('/stall', base),
      pool: new ConnectionPool({ maxSockets: 2 }),
      idleTimeoutMs: 200,
    });
    await expect(readBody(response.body)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });
});
