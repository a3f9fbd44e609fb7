import { ConfigurationError } from '../../common/errors';
import { formatDuration } from '../../common/format';
import { sendSamples } from '../analysis/send';
import { judge, type AnalysisResult } from '../analysis/verdict';
import type { KubeObject } from '../manifests';
import { readyPods, type Context } from './context';

/** Which pods stand for the new version and which for the stable one. */
export interface AnalysisTarget {
  /** The new version's Deployment, as applied. */
  candidate: KubeObject;
  candidateSelector: string;
  /** Absent when nothing ran before this deploy. */
  stableSelector?: string;
}

/**
 * The model-quality gate: every sample goes to a ready pod of the new version and, at the
 * same moment, to one of the stable version, through the API server's pod proxy; the answers
 * are compared (errors, agreement at analysis-field, accuracy, latency) into a verdict.
 */
export async function analyse(context: Context, target: AnalysisTarget): Promise<AnalysisResult> {
  const { settings, client, logger, result } = context;
  const analysis = settings.analysis!;
  const containers =
    (
      target.candidate.spec as
        | {
            template?: {
              spec?: { containers?: Array<{ ports?: Array<{ containerPort: number }> }> };
            };
          }
        | undefined
    )?.template?.spec?.containers ?? [];
  const port =
    analysis.port ?? containers.flatMap((c) => c.ports ?? []).map((p) => p.containerPort)[0];
  if (port === undefined) {
    throw new ConfigurationError(
      `Input 'analysis-port' is needed: the containers of ${target.candidate.kind}/` +
        `${target.candidate.metadata.name} declare no containerPort to send the samples to.`,
    );
  }
  return logger.group(
    `Analysing: ${analysis.samples.length} sample(s) to the new and the stable version`,
    async () => {
      const namespace = result.namespace;
      const candidatePods = await readyPods(client, namespace, target.candidateSelector);
      const stablePods = target.stableSelector
        ? await readyPods(client, namespace, target.stableSelector)
        : [];
      if (candidatePods.length === 0)
        throw new Error(
          `No ready pod of the new version (${target.candidateSelector}) to analyse.`,
        );
      if (target.stableSelector && stablePods.length === 0)
        throw new Error(
          `No ready pod of the stable version (${target.stableSelector}) to compare with.`,
        );
      logger.info(`New version: ${candidatePods.join(', ')} (port ${port})`);
      logger.info(
        target.stableSelector
          ? `Stable version: ${stablePods.join(', ')}`
          : 'No stable version runs yet: the new one is judged on its own (errors, accuracy).',
      );
      const started = Date.now();
      const { outcomes, throttled } = await sendSamples(
        client,
        analysis.samples,
        { pods: candidatePods, port },
        target.stableSelector ? { pods: stablePods, port } : undefined,
        {
          namespace,
          path: analysis.path,
          field: analysis.field,
          concurrency: analysis.concurrency,
        },
        logger,
      );
      const judged = judge(outcomes, analysis.thresholds, analysis.fieldText, {
        throttled,
        milliseconds: Date.now() - started,
      });
      for (const check of judged.checks) {
        logger.info(`${check.metric}: ${check.pass ? 'pass' : 'FAIL'} (${check.threshold})`);
      }
      logger.info(
        `Verdict: ${judged.verdict} after ${formatDuration(judged.milliseconds)}` +
          (throttled
            ? ` (${throttled} request(s) throttled by the API server and sent again)`
            : ''),
      );
      return judged;
    },
  );
}
