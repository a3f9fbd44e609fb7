import type { Logger } from '../../common/logger';
import type { DeploySettings } from '../inputs';
import type { KubeClient } from '../kube/client';
import type { Rendered } from '../render';
import { analyse, type AnalysisTarget } from './analyse';
import { deployGreen, promoteGreen, rejectGreen } from './blue-green';
import { deployCanary, promoteCanary, rejectCanary } from './canary';
import type { Context, ProgressiveResult } from './context';

interface StrategyActions {
  deploy(context: Context): Promise<AnalysisTarget | undefined>;
  promote(context: Context): Promise<void>;
  reject(context: Context): Promise<void>;
}

const STRATEGIES: Record<'canary' | 'blue-green', StrategyActions> = {
  canary: { deploy: deployCanary, promote: promoteCanary, reject: rejectCanary },
  'blue-green': { deploy: deployGreen, promote: promoteGreen, reject: rejectGreen },
};

/**
 * Canary or blue-green: `deploy` puts the new version beside the stable one and, with
 * analysis-requests, judges it against the stable one; with auto-promote a pass promotes and
 * a fail rejects. `promote` and `reject` act on what an earlier deploy left, found by name and
 * label. A failing verdict fails the step either way, so a workflow's reject job runs.
 */
export async function runProgressive(
  settings: DeploySettings,
  client: KubeClient,
  rendered: Rendered,
  bundlePath: string,
  logger: Logger,
): Promise<ProgressiveResult> {
  const strategy = settings.strategy as 'canary' | 'blue-green';
  const result: ProgressiveResult = {
    strategy,
    action: settings.action,
    namespace: rendered.namespace,
    phases: [],
    pairs: [],
    removed: [],
    routed: [],
  };
  const context: Context = { settings, client, rendered, bundlePath, logger, result };
  const actions = STRATEGIES[strategy];
  if (settings.action === 'promote') {
    await actions.promote(context);
    return result;
  }
  if (settings.action === 'reject') {
    await actions.reject(context);
    return result;
  }
  const target = await actions.deploy(context);
  if (!target || !settings.analysis) return result;
  const analysis = await analyse(context, target);
  result.analysis = analysis;
  const failed = analysis.checks.filter((check) => !check.pass).map((check) => check.metric);
  const newVersion = strategy === 'canary' ? 'canary' : 'green version';
  if (!settings.autoPromote) {
    if (analysis.verdict === 'fail') {
      result.failure =
        `The analysis failed (${failed.join(', ')}): the ${newVersion} answers worse than the ` +
        `stable version. It is left for inspection; run action reject to remove it.`;
    }
    return result;
  }
  if (analysis.verdict === 'pass') {
    logger.info(`The analysis passed: promoting (auto-promote).`);
    await actions.promote(context);
    return result;
  }
  logger.info(`The analysis failed (${failed.join(', ')}): rejecting (auto-promote).`);
  await actions.reject(context);
  result.failure =
    `The analysis failed (${failed.join(', ')}): the ${newVersion} answers worse than the ` +
    `stable version, so it was rejected and removed; the stable version kept serving.`;
  return result;
}
