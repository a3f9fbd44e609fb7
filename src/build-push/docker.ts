import { spawn } from 'node:child_process';
import type { Logger } from '../common/logger';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The docker CLI, run as a child process. `configDir` is a private DOCKER_CONFIG for this run,
 * so `docker login` never writes credentials into the user's ~/.docker.
 */
export class DockerCli {
  constructor(
    private readonly logger: Logger,
    readonly configDir?: string,
    private readonly binary = 'docker',
  ) {}

  /** Runs docker; `stream` prints output lines as they come (builds, pushes). */
  run(
    args: string[],
    options: { input?: string; stream?: boolean; check?: boolean } = {},
  ): Promise<DockerResult> {
    const fullArgs = this.configDir ? ['--config', this.configDir, ...args] : args;
    return new Promise((resolve, reject) => {
      const child = spawn(this.binary, fullArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let pending = '';
      const emit = (chunk: string) => {
        if (!options.stream) return;
        pending += chunk;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) this.logger.info(line);
      };
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        emit(chunk);
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        emit(chunk);
      });
      child.on('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'ENOENT'
            ? new Error(
                `docker is not installed or not on PATH (${this.binary}); dockerfile mode and the smoke test need it`,
              )
            : error,
        ),
      );
      child.on('close', (code) => {
        if (pending && options.stream) this.logger.info(pending);
        const result = { code: code ?? -1, stdout, stderr };
        if (options.check !== false && result.code !== 0) {
          const detail = (stderr.trim() || stdout.trim()).split('\n').slice(-5).join('\n');
          reject(new Error(`docker ${args[0]} failed (exit ${result.code}): ${detail}`));
        } else resolve(result);
      });
      child.stdin.end(options.input ?? '');
    });
  }

  async hasBuildx(): Promise<boolean> {
    const result = await this.run(['buildx', 'version'], { check: false }).catch(() => undefined);
    return result?.code === 0;
  }

  /** `docker login` with the password on stdin, never on the command line. */
  async login(registry: string, username: string, password: string): Promise<void> {
    this.logger.mask(password);
    await this.run(['login', registry, '--username', username, '--password-stdin'], {
      input: password,
    });
  }

  async logout(registry: string): Promise<void> {
    await this.run(['logout', registry], { check: false });
  }
}
