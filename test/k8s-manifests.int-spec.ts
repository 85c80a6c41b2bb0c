import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/config';

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

interface ValidatingModel {
  validate(): void;
}

interface PodSpec {
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  containers: {
    image: string;
    securityContext?: Record<string, unknown>;
    readinessProbe?: { httpGet: { port: string }; timeoutSeconds?: number };
  }[];
}

const root = path.resolve(__dirname, '..');

function build(overlay: string): Manifest[] {
  const output = execFileSync('kubectl', ['kustomize', path.join(root, 'k8s/overlays', overlay)], {
    encoding: 'utf8',
  });
  return parseAllDocuments(output).map((document) => document.toJS() as Manifest);
}

/** Validates against the Kubernetes OpenAPI schemas shipped by the kubernetes-models package. */
async function validate(manifest: Manifest): Promise<void> {
  const [group, version] = manifest.apiVersion.includes('/')
    ? manifest.apiVersion.split('/')
    : [undefined, manifest.apiVersion];
  const modulePath = `kubernetes-models/${group === undefined ? '' : `${group}/`}${version}/${manifest.kind}`;
  const loaded = (await import(modulePath)) as Partial<
    Record<string, new (data: Manifest) => ValidatingModel>
  >;
  const Model = loaded[manifest.kind];
  if (Model === undefined) throw new Error(`no schema for ${manifest.apiVersion} ${manifest.kind}`);
  new Model(manifest).validate();
}

describe.each(['dev', 'prod'])('k8s overlay %s', (overlay) => {
  const manifests = build(overlay);

  it('has every workload the service needs', () => {
    const kinds = manifests.map((manifest) => `${manifest.kind}/${manifest.metadata.name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'Deployment/recsys-api',
        'Deployment/recsys-ingest',
        'Deployment/recsys-train',
        'Job/recsys-migrate',
        'Job/recsys-topics',
        'ConfigMap/recsys-config',
        'PodDisruptionBudget/recsys-api',
        'HorizontalPodAutoscaler/recsys-api',
        'NetworkPolicy/recsys-default-deny',
      ]),
    );
    expect(new Set(manifests.map((manifest) => manifest.metadata.namespace))).toEqual(
      new Set([overlay === 'prod' ? 'recsys' : 'recsys-dev']),
    );
  });

  it(
    overlay === 'prod'
      ? 'ships no Secret and no placeholder credential'
      : 'generates the dev Secret',
    () => {
      const secrets = manifests.filter((manifest) => manifest.kind === 'Secret');
      expect(secrets.map((secret) => secret.metadata.name)).toEqual(
        overlay === 'prod' ? [] : ['recsys-secrets'],
      );
      expect(JSON.stringify(manifests)).not.toMatch(/change-me/);
    },
  );

  it('runs every pod locked down, on pinned images, probed and scraped on the ops port', () => {
    const config = manifests.find((manifest) => manifest.kind === 'ConfigMap') as
      { data: Record<string, string> } | undefined;
    const { healthTimeoutMs } = loadConfig(config?.data ?? {});
    const pods = manifests.flatMap((manifest) => {
      const spec = manifest.spec as
        | { template?: { spec?: PodSpec }; jobTemplate?: { spec: { template: { spec: PodSpec } } } }
        | undefined;
      const pod = spec?.template?.spec ?? spec?.jobTemplate?.spec.template.spec;
      return pod === undefined ? [] : [{ name: manifest.metadata.name, pod }];
    });
    expect(pods.map((entry) => entry.name).sort()).toEqual([
      'recsys-api',
      'recsys-ingest',
      'recsys-migrate',
      'recsys-topics',
      'recsys-train',
    ]);
    for (const { pod } of pods) {
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      for (const container of pod.containers) {
        expect(container.image).toMatch(/:\d+\.\d+\.\d+$/);
        expect(container.securityContext).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        if (container.readinessProbe !== undefined) {
          expect(container.readinessProbe.httpGet.port).toBe('ops');
          // Readiness may take HEALTH_TIMEOUT_MS (default 2 s) to answer; the kubelet's default
          // timeout is 1 s and would count a slow but answering dependency as a failure.
          expect((container.readinessProbe.timeoutSeconds ?? 1) * 1000).toBeGreaterThan(
            healthTimeoutMs,
          );
        }
      }
    }
    expect(config?.data.OPS_PORT).toBe('9090');
  });

  it('validates every manifest against the Kubernetes schemas', async () => {
    for (const manifest of manifests) {
      await expect(validate(manifest)).resolves.toBeUndefined();
    }
  });

  it('configures what the service accepts, topics replicated in prod', () => {
    const config = manifests.find((manifest) => manifest.kind === 'ConfigMap') as unknown as {
      data: Record<string, string>;
    };
    const { kafka } = loadConfig(config.data);
    expect(kafka.newTopics).toEqual({
      partitions: 6,
      replicationFactor: overlay === 'prod' ? 3 : null,
      deadLetterRetentionDays: 30,
    });
  });

  it('requests a GPU for the trainer, which runs the train role', () => {
    const train = manifests.find((manifest) => manifest.metadata.name === 'recsys-train');
    expect(JSON.stringify(train)).toContain('"nvidia.com/gpu":1');
    expect(JSON.stringify(train)).toContain('"args":["train"]');
  });
});

it('rejects an invalid manifest (the validator is live)', async () => {
  const broken = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x' },
    spec: { replicas: 'two' },
  };
  await expect(validate(broken as unknown as Manifest)).rejects.toThrow();
});
