import { anonCannotWriteJobsAndArtifacts } from './anon-writes.ts';
import { foundationChecks, type ReadinessCheck } from './checks.ts';
import { kmsRoundTrip } from './kms.ts';
import { providerCatalogPresent, providerHealthFresh } from './providers.ts';
import { dlqDepthUnderThreshold } from './queue.ts';
import { schedulesOnTime } from './schedules.ts';
import { requiredSecretsPresent } from './secrets.ts';
import { storageRoundTrip } from './storage.ts';
import { usageInvariantHolds } from './usage-invariant.ts';

/** Every check `/ready` runs, in the order it reports them. */
export const launchChecks: readonly ReadinessCheck[] = [
  ...foundationChecks,
  anonCannotWriteJobsAndArtifacts,
  requiredSecretsPresent,
  kmsRoundTrip,
  providerCatalogPresent,
  providerHealthFresh,
  dlqDepthUnderThreshold,
  usageInvariantHolds,
  schedulesOnTime,
  storageRoundTrip,
];
