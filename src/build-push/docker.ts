import { getExecOutput, type ExecOptions, type ExecOutput } from '@actions/exec';
import type { Logger } from '../common/logger';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How docker is started: @actions/exec's getExecOutput (a test may record the calls). */
export type Exec = (command: string, args: string[], options: ExecOptions) => Promise<ExecOutput>;

/**
 * The docker CLI, run through @actions/exec. Every call gets the same environment: the
 * private DOCKER_CONFIG of this step (see docker-config.ts) and the buildx state the user set
 * up, so the build, the push and the smoke test see one sign-in and one builder.
 */
export class DockerCli {
  constructor(
    private readonly logger: Logger,
    /** The whole environment of each docker process. */
    readonly env: Record<string, string>,
    private readonly exec: Exec = getExecOutput,
    private readonly binary = 'docker',
  ) {}

  /**
   * Runs docker. `stream` prints output lines as they come (builds, pushes) and the command
   * line first; `input` goes to stdin; a non-zero exit fails unless `check` is false.
   */
  async run(
    args: string[],
    options: { input?: string; stream?: boolean; check?: boolean } = {},
  ): Promise<DockerResult> {
    if (options.stream) this.logger.info(`$ ${this.binary} ${args.join(' ')}`);
    const line = (text: string) => {
      if (options.stream) this.logger.info(text);
    };
    let output: ExecOutput;
    try {
      output = await this.exec(this.binary, args, {
        env: this.env,
        silent: true,
        ignoreReturnCode: true,
        input: options.input === undefined ? undefined : Buffer.from(options.input),
        listeners: { stdline: line, errline: line },
      });
    } catch (error) {
      if (/Unable to locate executable file/.test(String((error as Error)?.message))) {
        throw new Error(
          `docker is not installed or not on PATH (${this.binary}); dockerfile mode and the smoke test need it`,
        );
      }
      throw error;
    }
    const result = { code: output.exitCode, stdout: output.stdout, stderr: output.stderr };
    if (options.check !== false && result.code !== 0) {
      const detail = (result.stderr.trim() || result.stdout.trim())
        .split('\n')
        .slice(-5)
        .join('\n');
      throw new Error(`docker ${args[0]} failed (exit ${result.code}): ${detail}`);
    }
    return result;
  }

  /**
   * Whether `docker buildx` answers, with this step's environment: a buildx plugin installed in
   * the user's docker config (docker/setup-buildx-action puts it there) counts, as it would for
   * the user's own `docker buildx` calls.
   */
  async hasBuildx(): Promise<boolean> {
    const result = await this.run(['buildx', 'version'], { check: false }).catch(() => undefined);
    return result?.code === 0;
  }

  /** `docker login` with the password on stdin, never on the command line. */
  async login(registry: string, username: string, password: string): Promise<void> {
    this.logger.mask(password);
    this.logger.info(`$ ${this.binary} login ${registry} --username ${username} --password-stdin`);
    await this.run(['login', registry, '--username', username, '--password-stdin'], {
      input: password,
    });
  }
}
