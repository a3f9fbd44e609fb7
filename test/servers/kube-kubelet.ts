/* eslint-disable @typescript-eslint/no-explicit-any -- pod specs are JSON of many shapes */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

type Obj = Record<string, any>;

/** Labels on every container this kubelet starts, so a later run can find the orphans of a killed one. */
const LABEL = 'ai-app-delivery.kube-double';
const REPO_ROOT = path.resolve(__dirname, '../..');
/** Kubernetes' back-off: 10 s, doubling, at most 5 min (image pulls and crashed containers alike). */
const BACKOFF_BASE_MS = 10_000;
const BACKOFF_MAX_MS = 300_000;
/**
 * Probes run every periodSeconds as the pod says, but at least once a second: a faster
 * cluster than a real one, never a more forgiving one (thresholds and timeouts are kept).
 */
const MAX_PROBE_PERIOD_MS = 1_000;

export interface ContainerKubeletOptions {
  /**
   * The registry credential the node pulls with (on AKS, the kubelet identity holding
   * AcrPull). dockerd treats 127.0.0.0/8 registries as insecure, so it pulls from the local
   * Distribution registry over HTTPS without verifying its certificate.
   */
  registry?: RegistryCredential | (() => RegistryCredential);
}

export interface RegistryCredential {
  server: string;
  username: string;
  password: string;
}

/** What the kubelet needs from the API server double. */
export interface KubeletHooks {
  /** Replaces the stored pod's status (and node name); nothing when the pod is gone. */
  update(pod: Obj, change: (next: Obj) => void): void;
  /** A ConfigMap or Secret as stored, for env and volumes. */
  lookup(kind: 'ConfigMap' | 'Secret', namespace: string, name: string): Obj | undefined;
}

interface ContainerRun {
  spec: Obj;
  init: boolean;
  status: Obj;
  /** The current docker container, while one exists. */
  dockerName?: string;
  hostPorts: Map<number, number>;
  previousLogs?: string;
  waiter?: ChildProcess;
}

interface PodRun {
  pod: Obj;
  abort: AbortController;
  containers: ContainerRun[];
  podIP?: string;
  startTime?: string;
  scratch: string;
}

class PodStopped extends Error {}

/**
 * A kubelet that runs each pod as real containers through dockerd: it pulls the pod's images
 * (a missing one is a real ErrImagePull, then ImagePullBackOff with Kubernetes' back-off),
 * runs init containers to completion, then starts the containers with the pod's command,
 * args, env (values, ConfigMap and Secret references), working directory, user, read-only
 * root, dropped capabilities and emptyDir/ConfigMap/Secret volumes, each port published on
 * 127.0.0.1. Readiness comes from the readiness probe (HTTP, TCP or exec, after the startup
 * probe), or from the first port answering; a container that exits is restarted with
 * back-off and reported as CrashLoopBackOff with its exit code, and its logs (current and
 * previous) come from the container. Not emulated: pod networking between pods, DNS,
 * liveness probes, resource limits. Every container carries labels naming this process and
 * worktree; stop() removes them, and start() removes those a killed run left behind.
 */
export class ContainerKubelet {
  private readonly instance = randomBytes(3).toString('hex');
  private readonly pods = new Map<string, PodRun>();
  private readonly pulls = new Map<string, Promise<void>>();
  private readonly pulledHere = new Set<string>();
  private readonly removals = new Set<Promise<unknown>>();
  private dockerConfig?: string;
  private closed = false;

  constructor(
    private readonly options: ContainerKubeletOptions,
    private readonly hooks: KubeletHooks,
  ) {}

  async start(): Promise<void> {
    await removeOrphans();
    if (this.options.registry) {
      this.dockerConfig = mkdtempSync(path.join(tmpdir(), 'kubelet-docker-'));
      const { registry } = this.options;
      const { server, username, password } = typeof registry === 'function' ? registry() : registry;
      await docker(
        ['--config', this.dockerConfig, 'login', server, '-u', username, '--password-stdin'],
        { input: password },
      );
    }
  }

  /** Stops every pod and removes every container and image this kubelet created. */
  async close(): Promise<void> {
    this.closed = true;
    for (const uid of [...this.pods.keys()]) this.forget(uid);
    await Promise.allSettled([...this.removals]);
    const left = (await docker(['ps', '-aq', '--filter', `label=${LABEL}=${this.instance}`]))
      .split('\n')
      .filter(Boolean);
    if (left.length > 0) await docker(['rm', '-f', ...left]).catch(() => undefined);
    for (const image of this.pulledHere) await docker(['image', 'rm', image]).catch(() => '');
    if (this.dockerConfig) rmSync(this.dockerConfig, { recursive: true, force: true });
  }

  /** Starts a new pod's containers in the background. */
  run(pod: Obj): void {
    if (this.closed) return;
    const run: PodRun = {
      pod,
      abort: new AbortController(),
      scratch: path.join(tmpdir(), `kubelet-${this.instance}-${pod.metadata.uid}`),
      containers: [
        ...(pod.spec.initContainers ?? []).map((spec: Obj) => ({ spec, init: true })),
        ...pod.spec.containers.map((spec: Obj) => ({ spec, init: false })),
      ].map(({ spec, init }) => ({
        spec,
        init,
        hostPorts: new Map(),
        status: {
          name: spec.name,
          image: spec.image,
          imageID: '',
          ready: false,
          restartCount: 0,
          started: false,
          state: { waiting: { reason: init ? 'PodInitializing' : 'ContainerCreating' } },
        },
      })),
    };
    this.pods.set(pod.metadata.uid, run);
    this.publish(run);
    this.runPod(run).catch((error: unknown) => {
      if (!(error instanceof PodStopped) && !run.abort.signal.aborted) {
        console.error(`kubelet: pod ${pod.metadata.name}: ${String(error)}`);
      }
    });
  }

  /** The pod is gone: its containers are removed. */
  forget(uid: string): void {
    const run = this.pods.get(uid);
    if (!run) return;
    this.pods.delete(uid);
    run.abort.abort();
    for (const container of run.containers) container.waiter?.kill();
    const names = run.containers.map((c) => c.dockerName).filter(Boolean) as string[];
    const removal = (names.length ? docker(['rm', '-f', ...names]) : Promise.resolve(''))
      .catch(() => '')
      .finally(() => {
        rmSync(run.scratch, { recursive: true, force: true });
        this.removals.delete(removal);
      });
    this.removals.add(removal);
  }

  /** Where a pod's container port is reachable from this host, while a container runs. */
  endpoint(uid: string, port: number | string): { host: string; port: number } | undefined {
    const run = this.pods.get(uid);
    if (!run) return undefined;
    for (const container of run.containers) {
      if (container.init || !container.dockerName) continue;
      const number = resolvePort(container.spec, port);
      const hostPort = number === undefined ? undefined : container.hostPorts.get(number);
      if (hostPort) return { host: '127.0.0.1', port: hostPort };
    }
    return undefined;
  }

  /** A container's log: its last `tail` lines, of the current run or the previous one. */
  async logs(
    uid: string,
    container: string,
    tail: number | undefined,
    previous: boolean,
  ): Promise<string | undefined> {
    const found = this.pods.get(uid)?.containers.find((c) => c.spec.name === container);
    if (!found) return undefined;
    let text: string | undefined;
    if (previous) text = found.previousLogs;
    else if (found.dockerName) text = await containerLogs(found.dockerName).catch(() => undefined);
    else text = found.previousLogs;
    if (text === undefined) return undefined;
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    const kept = tail === undefined ? lines : tail === 0 ? [] : lines.slice(-tail);
    return kept.map((line) => `${line}\n`).join('');
  }

  // ---- the pod's life ---------------------------------------------------------------------

  private async runPod(run: PodRun): Promise<void> {
    for (const container of run.containers.filter((c) => c.init)) {
      await this.runContainer(run, container);
    }
    await Promise.all(
      run.containers.filter((c) => !c.init).map((container) => this.runContainer(run, container)),
    );
  }

  /** Runs one container until it is done (an init container, or restartPolicy Never) or the pod goes. */
  private async runContainer(run: PodRun, container: ContainerRun): Promise<void> {
    const { pod } = run;
    const { signal } = run.abort;
    const policy: string = pod.spec.restartPolicy ?? 'Always';
    let pullFailures = 0;
    let crashes = 0;
    for (;;) {
      this.setState(run, container, { waiting: { reason: 'ContainerCreating' } });
      const pulled = await this.pull(container.spec).then(
        () => undefined,
        (error: Error) => error.message,
      );
      this.check(run);
      if (pulled !== undefined) {
        const invalid = /invalid reference format/.test(pulled);
        this.setState(run, container, {
          waiting: {
            reason: invalid ? 'InvalidImageName' : 'ErrImagePull',
            message: `failed to pull image "${container.spec.image}": ${pulled}`,
          },
        });
        if (invalid) return;
        await sleep(500, signal);
        this.setState(run, container, {
          waiting: {
            reason: 'ImagePullBackOff',
            message: `Back-off pulling image "${container.spec.image}"`,
          },
        });
        await sleep(backoff(pullFailures++), signal);
        continue;
      }
      let args: string[];
      let env: Record<string, string>;
      try {
        ({ args, env } = await this.dockerRunArgs(run, container));
      } catch (error) {
        this.setState(run, container, {
          waiting: { reason: 'CreateContainerConfigError', message: (error as Error).message },
        });
        await sleep(BACKOFF_BASE_MS, signal);
        continue;
      }
      this.check(run);
      const name = args[args.indexOf('--name') + 1];
      try {
        await docker(args, { env });
      } catch (error) {
        await docker(['rm', '-f', name]).catch(() => '');
        this.setState(run, container, {
          waiting: { reason: 'RunContainerError', message: (error as Error).message },
        });
        await sleep(backoff(crashes++), signal);
        continue;
      }
      container.dockerName = name;
      if (signal.aborted) {
        await docker(['rm', '-f', name]).catch(() => '');
        throw new PodStopped();
      }
      const startedAt = stamp();
      container.hostPorts = await publishedPorts(name);
      run.podIP ??= await docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', name]).then(
        (ip) => ip.trim() || undefined,
        () => undefined,
      );
      this.check(run);
      this.setState(run, container, { running: { startedAt } }, { started: !container.init });
      const probing = container.init ? undefined : this.probe(run, container);
      const exitCode = await this.waitForExit(container, name);
      probing?.abort();
      container.previousLogs = await containerLogs(name).catch(() => '');
      container.dockerName = undefined;
      container.hostPorts = new Map();
      await docker(['rm', '-f', name]).catch(() => '');
      this.check(run);
      const terminated = {
        exitCode,
        reason: exitCode === 0 ? 'Completed' : 'Error',
        startedAt,
        finishedAt: stamp(),
      };
      const done =
        (container.init && exitCode === 0) ||
        (!container.init && (policy === 'Never' || (policy === 'OnFailure' && exitCode === 0)));
      if (done) {
        this.setState(run, container, { terminated }, { ready: false, started: false });
        return;
      }
      const delay = backoff(crashes++);
      this.setState(
        run,
        container,
        {
          waiting: {
            reason: 'CrashLoopBackOff',
            message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${container.spec.name} pod=${pod.metadata.name}`,
          },
        },
        {
          ready: false,
          started: false,
          restartCount: container.status.restartCount + 1,
          lastState: { terminated },
        },
      );
      await sleep(delay, signal);
    }
  }

  private check(run: PodRun): void {
    if (run.abort.signal.aborted || this.closed) throw new PodStopped();
  }

  private waitForExit(container: ContainerRun, name: string): Promise<number> {
    return new Promise((resolve) => {
      const child = spawn('docker', ['wait', name], { stdio: ['ignore', 'pipe', 'ignore'] });
      container.waiter = child;
      let out = '';
      child.stdout.on('data', (chunk) => (out += chunk));
      child.on('close', () => {
        container.waiter = undefined;
        const code = Number(out.trim());
        resolve(Number.isInteger(code) && out.trim() !== '' ? code : 137);
      });
    });
  }

  /** Pulls an image as the pod's pull policy says, once at a time per image. */
  private async pull(spec: Obj): Promise<void> {
    const image: string = spec.image;
    const policy =
      spec.imagePullPolicy ?? (/:latest$|^[^:@]+$/.test(image) ? 'Always' : 'IfNotPresent');
    const present = await docker(['image', 'inspect', '-f', '{{.Id}}', image]).then(
      () => true,
      () => false,
    );
    if (policy === 'Never') {
      if (!present) throw new Error(`image "${image}" is not present with pull policy of Never`);
      return;
    }
    if (present && policy === 'IfNotPresent') return;
    let pending = this.pulls.get(image);
    if (!pending) {
      const config = this.dockerConfig ? ['--config', this.dockerConfig] : [];
      pending = docker([...config, 'pull', '-q', image]).then(() => {
        if (!present) this.pulledHere.add(image);
      });
      this.pulls.set(image, pending);
      pending.finally(() => this.pulls.delete(image)).catch(() => undefined);
    }
    await pending;
  }

  /** `docker run` arguments (and the environment the docker CLI passes on) for one container. */
  private async dockerRunArgs(
    run: PodRun,
    container: ContainerRun,
  ): Promise<{ args: string[]; env: Record<string, string> }> {
    const { pod } = run;
    const spec = container.spec;
    const namespace: string = pod.metadata.namespace;
    const attempt = container.status.restartCount;
    const name = `kube-double-${this.instance}-${pod.metadata.name}-${spec.name}-${attempt}-${randomBytes(2).toString('hex')}`;
    const args = [
      'run',
      '-d',
      '--name',
      name,
      '--hostname',
      pod.metadata.name.slice(0, 63),
      '--label',
      `${LABEL}=${this.instance}`,
      '--label',
      `${LABEL}.pid=${process.pid}`,
      '--label',
      `${LABEL}.worktree=${REPO_ROOT}`,
      '--label',
      `io.kubernetes.pod.namespace=${namespace}`,
      '--label',
      `io.kubernetes.pod.name=${pod.metadata.name}`,
      '--label',
      `io.kubernetes.container.name=${spec.name}`,
    ];
    // The pod's environment, values passed through the docker CLI's own environment (-e NAME),
    // so Secret values never appear in a process list; names the CLI itself reads go inline.
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(this.environment(pod, spec))) {
      if (/^(PATH|HOME|DOCKER_.*)$/.test(key)) {
        args.push('-e', `${key}=${value}`);
      } else {
        args.push('-e', key);
        env[key] = value;
      }
    }
    for (const port of spec.ports ?? []) {
      args.push('-p', `127.0.0.1::${port.containerPort}/${(port.protocol ?? 'TCP').toLowerCase()}`);
    }
    const security = { ...pod.spec.securityContext, ...spec.securityContext };
    const user = security.runAsUser;
    if (user !== undefined) {
      args.push(
        '--user',
        `${user}${security.runAsGroup !== undefined ? `:${security.runAsGroup}` : ''}`,
      );
    }
    if (security.runAsNonRoot && user === undefined) {
      const imageUser = (
        await docker(['image', 'inspect', '-f', '{{.Config.User}}', spec.image])
      ).trim();
      const uid = imageUser.split(':')[0];
      if (uid === '' || uid === 'root' || uid === '0') {
        throw new Error(
          `container has runAsNonRoot and image will run as root (pod: "${pod.metadata.name}_${namespace}(${pod.metadata.uid})", container: ${spec.name})`,
        );
      }
      if (!/^\d+$/.test(uid)) {
        throw new Error(
          `container has runAsNonRoot and image has non-numeric user (${uid}), cannot verify user is non-root (pod: "${pod.metadata.name}_${namespace}(${pod.metadata.uid})", container: ${spec.name})`,
        );
      }
    }
    if (security.readOnlyRootFilesystem) args.push('--read-only');
    if (security.allowPrivilegeEscalation === false)
      args.push('--security-opt', 'no-new-privileges');
    for (const capability of security.capabilities?.drop ?? []) args.push('--cap-drop', capability);
    for (const capability of security.capabilities?.add ?? []) args.push('--cap-add', capability);
    for (const mount of spec.volumeMounts ?? []) {
      args.push(...this.volume(run, mount));
    }
    if (spec.workingDir) args.push('--workdir', spec.workingDir);
    // command replaces the image's ENTRYPOINT (and drops its CMD); args replace CMD.
    const command: string[] | undefined = spec.command;
    if (command?.length) args.push('--entrypoint', command[0]);
    args.push(spec.image, ...(command?.slice(1) ?? []), ...(spec.args ?? []));
    return { args, env };
  }

  private environment(pod: Obj, spec: Obj): Record<string, string> {
    const namespace = pod.metadata.namespace;
    const values: Record<string, string> = {};
    const source = (kind: 'ConfigMap' | 'Secret', name: string, optional: boolean) => {
      const object = this.hooks.lookup(kind, namespace, name);
      if (!object && !optional) throw new Error(`${kind.toLowerCase()} "${name}" not found`);
      return object;
    };
    const entries = (object: Obj | undefined): Record<string, string> => {
      if (!object) return {};
      if (object.kind === 'Secret') {
        return {
          ...Object.fromEntries(
            Object.entries(object.data ?? {}).map(([k, v]) => [
              k,
              Buffer.from(String(v), 'base64').toString('utf8'),
            ]),
          ),
          ...object.stringData,
        };
      }
      return { ...object.data };
    };
    for (const from of spec.envFrom ?? []) {
      const ref = from.configMapRef ?? from.secretRef;
      const kind = from.configMapRef ? 'ConfigMap' : 'Secret';
      for (const [key, value] of Object.entries(entries(source(kind, ref.name, ref.optional)))) {
        values[`${from.prefix ?? ''}${key}`] = value;
      }
    }
    for (const variable of spec.env ?? []) {
      if (variable.value !== undefined) values[variable.name] = String(variable.value);
      const from = variable.valueFrom;
      if (!from) continue;
      if (from.configMapKeyRef || from.secretKeyRef) {
        const ref = from.configMapKeyRef ?? from.secretKeyRef;
        const kind = from.configMapKeyRef ? 'ConfigMap' : 'Secret';
        const data = entries(source(kind, ref.name, ref.optional));
        if (data[ref.key] === undefined && !ref.optional) {
          throw new Error(`couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}`);
        }
        if (data[ref.key] !== undefined) values[variable.name] = data[ref.key];
      } else if (from.fieldRef) {
        const field: string = from.fieldRef.fieldPath;
        values[variable.name] =
          field === 'metadata.name'
            ? pod.metadata.name
            : field === 'metadata.namespace'
              ? namespace
              : field === 'metadata.uid'
                ? pod.metadata.uid
                : '';
      }
    }
    return values;
  }

  private volume(run: PodRun, mount: Obj): string[] {
    const volume = (run.pod.spec.volumes ?? []).find((v: Obj) => v.name === mount.name);
    if (!volume) throw new Error(`volume "${mount.name}" is not defined in the pod`);
    if (volume.emptyDir) {
      const size = volume.emptyDir.sizeLimit ? `,size=${toBytes(volume.emptyDir.sizeLimit)}` : '';
      return ['--tmpfs', `${mount.mountPath}:rw,exec,mode=1777${size}`];
    }
    const kind = volume.configMap ? 'ConfigMap' : volume.secret ? 'Secret' : undefined;
    if (!kind) {
      const type = Object.keys(volume).find((key) => key !== 'name');
      throw new Error(
        `volume "${volume.name}": the Kubernetes double does not run ${type} volumes`,
      );
    }
    const ref = volume.configMap ?? volume.secret;
    const refName = ref.name ?? ref.secretName;
    const object = this.hooks.lookup(kind, run.pod.metadata.namespace, refName);
    if (!object) throw new Error(`${kind.toLowerCase()} "${refName}" not found`);
    const dir = path.join(run.scratch, volume.name);
    mkdirSync(dir, { recursive: true });
    const data: Record<string, string> =
      kind === 'Secret'
        ? Object.fromEntries(
            Object.entries(object.data ?? {}).map(([k, v]) => [
              k,
              Buffer.from(String(v), 'base64').toString('utf8'),
            ]),
          )
        : { ...object.data };
    for (const [key, value] of Object.entries(data)) writeFileSync(path.join(dir, key), value);
    return ['-v', `${dir}:${mount.mountPath}:ro`];
  }

  /** Probes a started container until it exits: startup first, then readiness. */
  private probe(run: PodRun, container: ContainerRun): AbortController {
    const abort = new AbortController();
    const signal = AbortSignal.any([abort.signal, run.abort.signal]);
    const spec = container.spec;
    const loop = async () => {
      if (spec.startupProbe) {
        const ok = await this.probeUntil(container, spec.startupProbe, signal);
        if (!ok) {
          // Startup never succeeded: the kubelet kills the container, which then restarts.
          if (container.dockerName) await docker(['kill', container.dockerName]).catch(() => '');
          return;
        }
      }
      this.setState(run, container, container.status.state, { started: true });
      const readiness =
        spec.readinessProbe ??
        (spec.ports?.length ? { tcpSocket: { port: spec.ports[0].containerPort } } : undefined);
      if (!readiness) {
        this.setState(run, container, container.status.state, { ready: true });
        return;
      }
      await sleep((readiness.initialDelaySeconds ?? 0) * 1000, signal);
      let failures = 0;
      let successes = 0;
      while (!signal.aborted) {
        const ok = await this.probeOnce(container, readiness);
        if (signal.aborted) return;
        if (ok) {
          failures = 0;
          successes++;
          if (!container.status.ready && successes >= (readiness.successThreshold ?? 1)) {
            this.setState(run, container, container.status.state, { ready: true });
          }
        } else {
          successes = 0;
          failures++;
          if (container.status.ready && failures >= (readiness.failureThreshold ?? 3)) {
            this.setState(run, container, container.status.state, { ready: false });
          }
        }
        await sleep(period(readiness), signal);
      }
    };
    loop().catch(() => undefined);
    return abort;
  }

  private async probeUntil(
    container: ContainerRun,
    probe: Obj,
    signal: AbortSignal,
  ): Promise<boolean> {
    await sleep((probe.initialDelaySeconds ?? 0) * 1000, signal);
    let failures = 0;
    while (!signal.aborted) {
      if (await this.probeOnce(container, probe)) return true;
      if (++failures >= (probe.failureThreshold ?? 3)) return false;
      await sleep(period(probe), signal);
    }
    return false;
  }

  private async probeOnce(container: ContainerRun, probe: Obj): Promise<boolean> {
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    const spec = container.spec;
    try {
      if (probe.httpGet) {
        const port = resolvePort(spec, probe.httpGet.port);
        const hostPort = port === undefined ? undefined : container.hostPorts.get(port);
        if (!hostPort) return false;
        const response = await fetch(`http://127.0.0.1:${hostPort}${probe.httpGet.path ?? '/'}`, {
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.arrayBuffer();
        return response.status >= 200 && response.status < 400;
      }
      if (probe.tcpSocket) {
        const port = resolvePort(spec, probe.tcpSocket.port);
        const hostPort = port === undefined ? undefined : container.hostPorts.get(port);
        return hostPort ? await tcpAnswers(hostPort, timeoutMs) : false;
      }
      if (probe.exec && container.dockerName) {
        await docker(['exec', container.dockerName, ...probe.exec.command], { timeoutMs });
        return true;
      }
    } catch {
      return false;
    }
    return false;
  }

  // ---- status ------------------------------------------------------------------------------

  private setState(run: PodRun, container: ContainerRun, state: Obj, extra: Obj = {}): void {
    container.status = { ...container.status, state, ...extra };
    if (state.running || state.terminated) delete container.status.lastState?.waiting;
    this.publish(run);
  }

  /** Writes the pod's status from its containers', as the kubelet's status manager does. */
  private publish(run: PodRun): void {
    const inits = run.containers.filter((c) => c.init);
    const mains = run.containers.filter((c) => !c.init);
    const initialized = inits.every((c) => c.status.state.terminated?.exitCode === 0);
    const ready = initialized && mains.every((c) => c.status.ready);
    const terminated = mains.every((c) => c.status.state.terminated);
    const phase = terminated
      ? mains.every((c) => c.status.state.terminated.exitCode === 0)
        ? 'Succeeded'
        : 'Failed'
      : initialized && mains.every((c) => c.status.state.running || c.status.lastState)
        ? 'Running'
        : 'Pending';
    run.startTime ??= stamp();
    const condition = (type: string, status: boolean, reason?: string) => ({
      type,
      status: status ? 'True' : 'False',
      ...(status || !reason ? {} : { reason }),
      lastTransitionTime: stamp(),
    });
    this.hooks.update(run.pod, (next) => {
      next.spec.nodeName = 'aks-nodepool1-12345678-vmss000000';
      const previous: Obj[] = next.status?.conditions ?? [];
      const keep = (c: Obj) => {
        const before = previous.find((p) => p.type === c.type);
        return before && before.status === c.status
          ? { ...c, lastTransitionTime: before.lastTransitionTime }
          : c;
      };
      next.status = {
        phase,
        hostIP: '10.224.0.4',
        ...(run.podIP ? { podIP: run.podIP, podIPs: [{ ip: run.podIP }] } : {}),
        startTime: run.startTime,
        qosClass: 'BestEffort',
        conditions: [
          condition('PodScheduled', true),
          condition('Initialized', initialized, 'ContainersNotInitialized'),
          condition('ContainersReady', ready, 'ContainersNotReady'),
          condition('Ready', ready, 'ContainersNotReady'),
        ].map(keep),
        ...(inits.length ? { initContainerStatuses: inits.map((c) => c.status) } : {}),
        containerStatuses: mains.map((c) => c.status),
      };
    });
  }
}

// ---- helpers ----------------------------------------------------------------------------------

function docker(
  args: string[],
  options: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'docker',
      args,
      {
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 120_000,
      },
      (error, stdout, stderr) => {
        if (error) {
          const message = (stderr || error.message)
            .trim()
            .replace(/^Error response from daemon: /, '');
          reject(new Error(message));
        } else resolve(stdout);
      },
    );
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** stdout and stderr of a container, as `kubectl logs` shows them (one stream). */
function containerLogs(name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', ['logs', name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (chunk) => (text += chunk));
    child.stderr.on('data', (chunk) => (text += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(text))));
  });
}

/** containerPort → host port, from `docker port`. */
async function publishedPorts(name: string): Promise<Map<number, number>> {
  const ports = new Map<number, number>();
  const text = await docker(['port', name]).catch(() => '');
  for (const line of text.split('\n')) {
    const match = /^(\d+)\/\w+ -> 127\.0\.0\.1:(\d+)$/.exec(line.trim());
    if (match) ports.set(Number(match[1]), Number(match[2]));
  }
  return ports;
}

/** A probe's or proxy's port, by number or by the container port's name. */
export function resolvePort(spec: Obj, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return (spec.ports ?? []).find((p: Obj) => p.name === port)?.containerPort;
}

function tcpAnswers(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Containers a killed run of this worktree left behind (their process is gone). */
async function removeOrphans(): Promise<void> {
  const text = await docker([
    'ps',
    '-a',
    '--filter',
    `label=${LABEL}.worktree=${REPO_ROOT}`,
    '--format',
    `{{.ID}} {{.Label "${LABEL}.pid"}}`,
  ]).catch(() => '');
  const orphans = text
    .split('\n')
    .map((line) => line.trim().split(' '))
    .filter(([id, pid]) => id && !processAlive(Number(pid)))
    .map(([id]) => id);
  if (orphans.length > 0) await docker(['rm', '-f', ...orphans]).catch(() => '');
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function backoff(failures: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** failures);
}

function period(probe: Obj): number {
  return Math.min(MAX_PROBE_PERIOD_MS, (probe.periodSeconds ?? 10) * 1000);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new PodStopped());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new PodStopped());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function stamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

/** A Kubernetes quantity (64Mi, 1G, 500000) in bytes. */
function toBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(quantity));
  if (!match) return 64 * 1024 * 1024;
  const unit: Record<string, number> = {
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Math.round(Number(match[1]) * (match[2] ? unit[match[2]] : 1));
}
