import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { freePort, waitForPort, stopChild } from './ports';

const TINYPROXY = '/usr/bin/tinyproxy';

/**
 * A real forward proxy, Debian's tinyproxy, on 127.0.0.1: what a company's HTTPS_PROXY is.
 * It forwards absolute-form http requests and CONNECT tunnels, and logs each request line, so a
 * test can tell what went through it.
 */
export class ForwardProxy {
  private child?: ChildProcess;
  private dir = '';
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    if (!existsSync(TINYPROXY)) {
      throw new Error(`${TINYPROXY} is missing: run scripts/setup.sh (Debian package tinyproxy)`);
    }
    this.dir = mkdtempSync(path.join(tmpdir(), 'tinyproxy-'));
    this.port = await freePort();
    const config = path.join(this.dir, 'tinyproxy.conf');
    writeFileSync(
      config,
      [
        `Port ${this.port}`,
        'Listen 127.0.0.1',
        'Timeout 30',
        `LogFile "${path.join(this.dir, 'access.log')}"`,
        'LogLevel Info',
        'MaxClients 50',
        'Allow 127.0.0.1',
        '',
      ].join('\n'),
    );
    // -d: stay in the foreground, so the process is ours to stop.
    this.child = spawn(TINYPROXY, ['-d', '-c', config], { stdio: 'ignore' });
    await waitForPort(this.port, 10_000);
    return this;
  }

  /** The request lines tinyproxy logged (`GET http://host/path HTTP/1.1`, `CONNECT host:443 ...`). */
  requests(): string[] {
    const log = path.join(this.dir, 'access.log');
    if (!existsSync(log)) return [];
    return [...readFileSync(log, 'utf8').matchAll(/Request \(file descriptor \d+\): (.+)$/gm)].map(
      (match) => match[1],
    );
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
