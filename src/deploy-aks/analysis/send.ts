import { errorMessage } from '../../common/errors';
import { mapLimited } from '../../common/limiter';
import type { Logger } from '../../common/logger';
import type { KubeClient } from '../kube/client';
import { valueAt, type FieldPath } from './field';
import type { Sample } from './samples';

/** The pods of one version, all answering on the same port. */
export interface Side {
  pods: string[];
  port: number;
}

/** One answer of one version to one sample. */
export interface Observation {
  pod: string;
  /** The answer was usable: 2xx, JSON, with a value at the field. */
  ok: boolean;
  status?: number;
  milliseconds?: number;
  value?: unknown;
  /** Why it was not usable. */
  error?: string;
}

export interface SampleOutcome {
  sample: Sample;
  candidate: Observation;
  stable?: Observation;
}

export interface SendOptions {
  namespace: string;
  path: string;
  field: FieldPath;
  /** Samples in flight at once (each goes to both versions at the same moment). */
  concurrency: number;
}

/**
 * Sends every sample to a pod of the new version and, at the same moment, to a pod of the
 * stable one (round robin over each side's pods), through the API server's pod proxy, and
 * records each answer: its status, time, and the value at the compared field. Sending both
 * at once means both see the same load, so their latencies can be compared.
 */
export async function sendSamples(
  client: KubeClient,
  samples: Sample[],
  candidate: Side,
  stable: Side | undefined,
  options: SendOptions,
  logger: Logger,
): Promise<{ outcomes: SampleOutcome[]; throttled: number }> {
  let throttled = 0;
  let done = 0;
  let nextReport = Date.now() + 5_000;
  const ask = async (side: Side, sample: Sample, index: number): Promise<Observation> => {
    const pod = side.pods[index % side.pods.length];
    const request = {
      method: sample.method,
      path: sample.path ?? options.path,
      body: sample.body,
      contentType: sample.body === undefined ? undefined : 'application/json',
    };
    let response;
    try {
      response = await client
        .proxyPod(options.namespace, pod, side.port, request)
        // One more try when the connection to the API server itself broke.
        .catch((error: unknown) => {
          if ((error as { status?: number }).status) throw error;
          logger.debug(`sample line ${sample.line} to ${pod}: ${errorMessage(error)}; again`);
          return client.proxyPod(options.namespace, pod, side.port, request);
        });
    } catch (error) {
      if ((error as { status?: number }).status) throw error;
      return { pod, ok: false, error: errorMessage(error) };
    }
    throttled += response.throttled;
    const observation: Observation = {
      pod,
      ok: false,
      status: response.status,
      milliseconds: response.milliseconds,
    };
    if (response.fromApiServer) {
      observation.error = `the API server answered ${response.status}: ${response.fromApiServer.message ?? response.fromApiServer.reason ?? ''}`;
      return observation;
    }
    if (response.status < 200 || response.status >= 300) {
      observation.error = `HTTP ${response.status}`;
      return observation;
    }
    let answer: unknown;
    try {
      answer = JSON.parse(response.body.toString('utf8'));
    } catch {
      observation.error = 'the answer is not JSON';
      return observation;
    }
    const found = valueAt(answer, options.field);
    if (!found.found) {
      observation.error = 'the answer has nothing at the field';
      return observation;
    }
    observation.ok = true;
    observation.value = found.value;
    return observation;
  };

  const outcomes = await mapLimited(samples, options.concurrency, async (sample, index) => {
    const [candidateAnswer, stableAnswer] = await Promise.all([
      ask(candidate, sample, index),
      stable ? ask(stable, sample, index) : Promise.resolve(undefined),
    ]);
    done++;
    if (Date.now() >= nextReport) {
      logger.info(`${done} of ${samples.length} samples sent`);
      nextReport = Date.now() + 5_000;
    }
    return { sample, candidate: candidateAnswer, stable: stableAnswer };
  });
  return { outcomes, throttled };
}
