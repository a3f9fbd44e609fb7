import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  BlobServiceClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
  type ContainerClient,
} from '@azure/storage-blob';
import { freePort, waitForPort } from './ports';
import { localTls } from './tls';

/** Azurite's fixed development account. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * The real Azurite blob service as a child process, over HTTPS with `--oauth basic`, so it
 * accepts bearer tokens only when their issuer, audience and lifetime are right.
 */
export class Azurite {
  private child?: ChildProcess;
  private dir = '';
  port = 0;
  readonly sharedKey = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);

  /** The account's blob endpoint, what the action's `blob-endpoint` input takes. */
  get endpoint(): string {
    return `https://127.0.0.1:${this.port}/${AZURITE_ACCOUNT}`;
  }

  async start(options: { inMemory?: boolean } = {}): Promise<this> {
    const tls = localTls();
    this.port = await freePort();
    this.dir = mkdtempSync(path.join(tmpdir(), 'azurite-'));
    const main = require.resolve('azurite/dist/src/blob/main.js');
    const args = [
      main,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(this.port),
      '--oauth',
      'basic',
      '--cert',
      tls.certPath,
      '--key',
      tls.keyPath,
      '--silent',
      '--skipApiVersionCheck',
    ];
    args.push(
      ...((options.inMemory ?? true) ? ['--inMemoryPersistence'] : ['--location', this.dir]),
    );
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.child = child;
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) =>
        reject(new Error(`Azurite exited with code ${code} while starting`)),
      ),
    );
    await Promise.race([waitForPort(this.port), exited]);
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        // Azurite's graceful shutdown can wait a minute or more after blobs were written; its
        // state is thrown away anyway, so it gets a few seconds before it is killed.
        const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** A client with the account key, for setting up fixtures (never given to the action). */
  serviceClient(): BlobServiceClient {
    return new BlobServiceClient(this.endpoint, this.sharedKey);
  }

  async container(name: string): Promise<ContainerClient> {
    const container = this.serviceClient().getContainerClient(name);
    await container.createIfNotExists();
    return container;
  }

  /** A container SAS query string with the given permissions, valid for an hour. */
  containerSas(container: string, permissions = 'rl'): string {
    return generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: ContainerSASPermissions.parse(permissions),
        startsOn: new Date(Date.now() - 60_000),
        expiresOn: new Date(Date.now() + 3_600_000),
      },
      this.sharedKey,
    ).toString();
  }
}
