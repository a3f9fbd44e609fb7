import { errorMessage } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { KubeObject } from '../manifests';
import type { KubeClient, ResourceInfo } from './client';

/**
 * A local copy of one kind in one namespace, kept current by list-then-watch: one list, then
 * a watch from its resourceVersion, re-opened from the last version seen when the server
 * ends it, and re-listed when that version is too old (410 Gone). Calls `onChange` after
 * every change.
 */
export class Informer {
  readonly objects = new Map<string, KubeObject>();
  private resourceVersion = '';
  private readonly done: Promise<void>;
  private readyResolve!: () => void;
  readonly ready = new Promise<void>((resolve) => (this.readyResolve = resolve));

  constructor(
    private readonly client: KubeClient,
    readonly info: ResourceInfo,
    readonly namespace: string | undefined,
    private readonly onChange: () => void,
    private readonly signal: AbortSignal,
    private readonly logger: Logger,
    onError: (error: unknown) => void,
  ) {
    this.done = this.run().catch((error) => {
      if (!signal.aborted) onError(error);
    });
  }

  /** Resolves once the watch loop has ended after an abort. */
  finished(): Promise<void> {
    return this.done;
  }

  private async relist(): Promise<void> {
    const list = await this.client.list(this.info, this.namespace);
    this.objects.clear();
    for (const item of list.items) this.objects.set(item.metadata.name!, item);
    this.resourceVersion = list.resourceVersion;
    this.onChange();
  }

  private async run(): Promise<void> {
    await this.relist();
    this.readyResolve();
    while (!this.signal.aborted) {
      let gone = false;
      await this.client
        .watch(
          this.info,
          this.namespace,
          this.resourceVersion,
          (event) => {
            if (event.type === 'ERROR') {
              const status = event.object as unknown as { code?: number; message?: string };
              if (status.code === 410) gone = true;
              else this.logger.debug(`watch ${this.info.plural}: ${status.message ?? 'error'}`);
              return;
            }
            this.resourceVersion =
              (event.object.metadata.resourceVersion as string | undefined) ?? this.resourceVersion;
            if (event.type === 'BOOKMARK') return;
            const name = event.object.metadata.name!;
            event.object.apiVersion ??= this.info.apiVersion;
            event.object.kind ??= this.info.kind;
            if (event.type === 'DELETED') this.objects.delete(name);
            else this.objects.set(name, event.object);
            this.onChange();
          },
          this.signal,
        )
        .catch((error) => {
          if ((error as { status?: number }).status === 410) gone = true;
          else throw error;
        });
      if (this.signal.aborted) break;
      if (gone) {
        this.logger.debug(`watch ${this.info.plural}: resourceVersion too old, listing again`);
        await this.relist().catch((error) => this.logger.debug(errorMessage(error)));
      }
    }
  }
}
