/**
 * `smolstage report`, looked at as a person would: a real tiny `smolstage run` (three stages, a
 * mixture adjustment, a metric promotion) writes its report at the end; the page is opened in
 * headless Chromium (Debian's `chromium`, driven by playwright-core) and the drawn charts are
 * checked in the browser — curves with non-empty paths of non-zero size, axis titles, one
 * rule per recorded promotion, the threshold and the deciding reading of the metric promotion,
 * the adjusted mixture with its trigger — and the page is screenshotted. The PNGs must be PNGs
 * of twice the size of their SVGs. The page must load nothing but itself.
 * The same run served from the cluster (TrainingRun and Stages in the real API server, its
 * objects in the S3 server, keys only in the run's Secret) must give byte-identical charts.
 *
 * SMOLSTAGE_REPORT_SCREENSHOT=FILE keeps a copy of the full-page screenshot, to look at.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { requireKube } from '../../../test/support/env.js';
import { GROUP, type Stage, StageKind, type TrainingRun, VERSION } from '../../src/api/types.js';
import { KubeWriter } from '../../src/drivers/kube/kube-writer.js';
import { ensureQuickstartData } from '../../src/drivers/local/inputs.js';
import type { LocalState } from '../../src/drivers/local/state.js';
import { createRunStore } from '../../src/storage/factory.js';
import { runCli } from './support/cli.js';
import { deleteNamespace } from './support/kube.js';
import { tinyRunYaml } from './support/local-runs.js';
import { createRun } from './support/objects.js';
import { crdNamespace } from './support/operator-setup.js';
import { createBucket, requireS3, runStorage, s3Env } from './support/s3.js';

// The page's DOM as far as this test reads it, for the functions run by page.evaluate (the
// operator's TypeScript projects have no DOM library).
interface El {
  getBoundingClientRect(): { width: number; height: number; right: number };
  getAttribute(name: string): string | null;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El>;
  textContent: string | null;
  tagName: string;
  id: string;
}
declare const document: El & { documentElement: { scrollWidth: number; scrollHeight: number } };
declare const window: { innerWidth: number };

const CHROMIUM = process.env.SMOLSTAGE_CHROMIUM ?? '/usr/bin/chromium';

let root: string;
let data: string;
/** The run the first test trained and reported; the cluster test serves the same run from S3. */
let localRun: string | undefined;

function runYaml(name: string): string {
  return tinyRunYaml({ name, data, stageThreeCondition: 'metric: eval.arithmetic.acc, atLeast: 0' });
}

const smolstage = (args: string[], env: NodeJS.ProcessEnv = process.env) => runCli(args, { cwd: root, env });

/** Width and height from a PNG's IHDR, after checking the signature. */
function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  assert.deepEqual(
    [...b.subarray(0, 8)],
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    `${file} is a PNG`,
  );
  assert.equal(b.subarray(12, 16).toString('latin1'), 'IHDR', `${file} starts with IHDR`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'smolstage-report-'));
  data = join(root, 'data');
  await ensureQuickstartData(data, () => {}, null);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('smolstage report', () => {
  it('a real run writes a report whose charts a browser draws: curves, axes, a marker per promotion, the deciding reading; PNGs open', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (see .ci/run)`);
    const dir = join(root, 'run');
    await writeFile(join(root, 'run.yaml'), runYaml('reported'));
    const result = await smolstage(['run', 'run.yaml', '--dir', dir, '--threads', '1']);
    assert.equal(result.code, 0, result.stderr);
    localRun = dir;
    const reportDir = join(dir, 'report');
    const htmlPath = join(reportDir, 'report.html');
    assert.ok(result.stdout.includes(`report: ${htmlPath}`), result.stdout);

    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LocalState;
    const status = state.run.status as NonNullable<TrainingRun['status']>;
    const promotions = status.promotions ?? [];
    assert.deepEqual(
      promotions.map((p) => p.reason),
      ['TokenBudgetReached', 'TokenBudgetReached', 'MetricThresholdMet'],
    );
    const three = state.stages.find((s) => s.spec.name === 'three');
    const decided = three?.status?.decision?.observations?.[0];
    assert.equal(decided?.metric, 'eval.arithmetic.acc');
    const adjustment = state.stages.find((s) => s.spec.name === 'two')?.status?.adjustments?.[0];
    assert.equal(adjustment?.trigger.metric, 'eval.code.loss');

    // Rewriting on request (also mid-run: it only reads) gives the same files.
    const again = await smolstage(['report', dir, '--out', join(root, 'again')]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /report: .*again\/report\.html \(\d+ PNG charts beside it\)/);
    const bad = await smolstage(['report', join(root, 'nowhere')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /has no state\.json/);

    const userDataDir = await mkdtemp(join(root, 'chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
      viewport: { width: 1200, height: 900 },
    });
    try {
      // tsx (esbuild, keepNames) compiles the functions handed to page.evaluate with calls to
      // a `__name` helper that only exists in Node; give the page a no-op one.
      await context.addInitScript('globalThis.__name = (f) => f;');
      const page = await context.newPage();
      const requested: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      const url = pathToFileURL(htmlPath).href;
      await page.goto(url, { waitUntil: 'load' });
      assert.deepEqual(requested, [url], 'self-contained: the page loads nothing but itself');
      assert.deepEqual(problems, []);

      const drawn = await page.evaluate(() => {
        const size = (e: El) => {
          const r = e.getBoundingClientRect();
          return { width: r.width, height: r.height };
        };
        // Vega draws a mark's items as <path> (lines, points, bars) or <line> (rules).
        const paths = (fig: El, cls: string) =>
          [...fig.querySelectorAll(`g.${cls}_marks > path, g.${cls}_marks > line`)].map((p) => ({
            d: p.getAttribute('d') ?? '',
            label: p.getAttribute('aria-label') ?? '',
            ...size(p),
          }));
        const texts = (fig: El, role: string) =>
          [...fig.querySelectorAll(`g.role-${role} text`)].map((t) => t.textContent ?? '');
        const figures = [...document.querySelectorAll('figure.chart')].map((fig) => {
          const svg = fig.querySelector('svg');
          return {
            id: fig.id,
            png: fig.getAttribute('data-png') ?? '',
            svg:
              svg === null
                ? null
                : {
                    width: Number(svg.getAttribute('width')),
                    height: Number(svg.getAttribute('height')),
                    shown: size(svg),
                  },
            axisTitles: texts(fig, 'axis-title'),
            axisLabels: texts(fig, 'axis-label').length,
            curves: ['curve', 'loss_curve', 'lr_curve', 'tps_curve', 'step_curve'].flatMap((c) =>
              paths(fig, c),
            ),
            promotions: paths(fig, 'promotion'),
            thresholds: paths(fig, 'threshold'),
            decisions: paths(fig, 'decision'),
            triggers: paths(fig, 'adjustment_trigger'),
            shares: paths(fig, 'share'),
            notes: texts(fig, 'mark').filter((t) => t.startsWith('scale ')),
          };
        });
        return {
          figures,
          headings: [...document.querySelectorAll('h2')].map((h) => h.textContent),
          tables: [...document.querySelectorAll('table')].length,
        };
      });

      const byId = new Map(drawn.figures.map((f) => [f.id, f]));
      const metricIds = [...byId.keys()].filter((id) => id.startsWith('metric-'));
      for (const metric of [
        'eval.code.loss',
        'eval.math.loss',
        'eval.arithmetic.acc',
        'eval.arithmetic.acc_norm',
      ])
        assert.ok(
          byId.has(`metric-${metric.replaceAll('.', '_')}`),
          `a chart of ${metric} among ${metricIds}`,
        );
      assert.ok(byId.has('loss-lr') && byId.has('mixture') && byId.has('throughput'));

      for (const f of drawn.figures) {
        assert.ok(f.svg !== null && f.svg.width > 0 && f.svg.height > 0, `${f.id} has an SVG`);
        assert.ok(f.svg.shown.width > 0 && f.svg.shown.height > 0, `${f.id} takes room on the page`);
        if (f.id !== 'mixture') {
          assert.ok(f.curves.length > 0, `${f.id} draws curves`);
          for (const c of f.curves)
            assert.match(c.d, /^M[\d.-]+,[\d.-]+/, `${f.id}: a curve is a non-empty path`);
          // A stage with a single record is a one-point path (its dot is a point mark).
          const lines = f.curves.filter((c) => /^M[\d.-]+,[\d.-]+L/.test(c.d));
          assert.ok(lines.length > 0, `${f.id} draws lines`);
          for (const c of lines) assert.ok(c.width > 0, `${f.id}: a line of non-zero width on the page`);
          assert.ok(f.axisTitles.includes('tokens (run total)'), `${f.id} axis titles ${f.axisTitles}`);
        }
        assert.ok(f.axisLabels > 3, `${f.id} has tick labels`);
        // The PNG beside the page: a PNG of twice the SVG's size.
        const png = pngSize(join(reportDir, f.png));
        assert.deepEqual(png, { width: f.svg.width * 2, height: f.svg.height * 2 }, f.png);
      }

      const loss = byId.get('loss-lr');
      assert.ok(loss !== undefined);
      assert.ok(
        loss.axisTitles.includes('train.loss') && loss.axisTitles.includes('train.lr (learning rate)'),
        `${loss.axisTitles}`,
      );
      assert.equal(loss.promotions.length, promotions.length, 'one rule per recorded promotion');
      for (const p of loss.promotions) assert.ok(p.height > 0, 'a promotion rule is drawn');
      assert.deepEqual(
        loss.promotions.map((p) => p.label).sort(),
        promotions.map((p) => p.message).sort(),
        'each rule names its promotion',
      );

      const acc = byId.get('metric-eval_arithmetic_acc');
      assert.ok(acc !== undefined);
      assert.equal(acc.thresholds.length, 1, "stage three's threshold");
      assert.match(acc.thresholds[0]?.label ?? '', /three promotes at ≥ 0 after 2K/);
      assert.ok((acc.thresholds[0]?.width ?? 0) > 0);
      assert.equal(acc.decisions.length, 1, 'one deciding reading: the metric promotion');
      assert.match(acc.decisions[0]?.label ?? '', new RegExp(`three promoted: ${decided?.value} ≥ 0`));
      for (const id of metricIds.filter((i) => i !== 'metric-eval_arithmetic_acc'))
        assert.equal(byId.get(id)?.decisions.length, 0, `${id} decided nothing`);

      const code = byId.get('metric-eval_code_loss');
      assert.equal(code?.triggers.length, 1, 'the reading that triggered the adjustment');
      assert.match(
        code?.triggers[0]?.label ?? '',
        /two: scale code ×2: eval\.code\.loss = [\d.]+ \(> 0\.01\)/,
      );

      const mixture = byId.get('mixture');
      assert.ok(mixture !== undefined);
      // one 2, two 3 as written + 3 adjusted, three 3.
      assert.equal(mixture.shares.length, 11);
      for (const s of mixture.shares) assert.ok(s.width > 0 && s.height > 0, 'a mixture bar is drawn');
      assert.deepEqual(mixture.notes.length, 1);
      assert.match(mixture.notes[0] ?? '', /scale code ×2: eval\.code\.loss/);

      for (const h of [
        'Stages',
        'Training loss and learning rate',
        'Evaluation metrics and promotion rules',
        'Promotions',
        'Mixtures and adjustments',
        'Throughput',
        'Checkpoints',
        'Export',
      ])
        assert.ok(drawn.headings.includes(h), `section ${h}`);
      assert.ok(!drawn.headings.includes('Notes'), 'no unreadable records and no Vega warnings');
      // stages, promotions, adjustments, checkpoints, export files
      assert.equal(drawn.tables, 5);
      const text = (await page.textContent('body')) ?? '';
      assert.match(text, /Run reported: Succeeded/);
      assert.match(text, /model\.safetensors/, 'the export is listed');
      for (const c of ['checkpoints/one/step-', 'checkpoints/three/step-']) assert.ok(text.includes(c), c);

      const shot = join(root, 'screenshot.png');
      await page.screenshot({ path: shot, fullPage: true });
      const { width, height } = pngSize(shot);
      const page2d = await page.evaluate(() => [
        document.documentElement.scrollWidth,
        document.documentElement.scrollHeight,
      ]);
      assert.deepEqual([width, height], page2d, 'the screenshot is the whole page');
      const sticking = await page.evaluate(() =>
        [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth)
          .map((e) => `${e.tagName}.${e.getAttribute('class') ?? ''}#${e.id}`)
          .slice(0, 5),
      );
      assert.equal(width, 1200, `the page fits the window; sticking out: ${sticking}`);
      if (process.env.SMOLSTAGE_REPORT_SCREENSHOT) {
        copyFileSync(shot, process.env.SMOLSTAGE_REPORT_SCREENSHOT);
        await page
          .locator('#metric-eval_arithmetic_acc')
          .screenshot({ path: `${process.env.SMOLSTAGE_REPORT_SCREENSHOT}.acc.png` });
      }
    } finally {
      await context.close();
    }
  });

  it('a cluster run: the TrainingRun and Stages from the API server, its objects from S3 with the Secret’s credentials, give the same charts', async () => {
    assert.ok(localRun !== undefined, 'the local run of the first test');
    const { client, namespace } = await crdNamespace('report');
    try {
      const bucket = await createBucket('report');
      const storage = await runStorage(client, namespace, requireS3(), bucket);
      const state = JSON.parse(readFileSync(join(localRun, 'state.json'), 'utf8')) as LocalState;
      const name = state.run.metadata.name;
      // The local run as the operator would have left it in the cluster: the objects with their
      // statuses, and the run root's files in the run's S3 store.
      const writer = new KubeWriter(client, 'report-test');
      const run = await createRun(client, {
        ...state.run,
        metadata: { name, namespace },
        spec: {
          ...state.run.spec,
          storage: {
            endpoint: storage.endpoint,
            bucket: storage.bucket,
            region: storage.region,
            prefix: storage.prefix,
            credentialsSecret: { name: storage.secretName },
          },
        },
        status: undefined,
      } as TrainingRun);
      await writer.patchRunStatus(run, state.run.status);
      for (const stage of state.stages) {
        const created = (await client.custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: StageKind.plural,
          body: {
            ...stage,
            metadata: { name: stage.metadata.name, namespace, labels: stage.metadata.labels },
            status: undefined,
          },
        })) as Stage;
        await writer.patchStageStatus(created, stage.status);
      }
      const store = createRunStore(
        { kind: 's3', endpoint: storage.endpoint, bucket, region: storage.region, prefix: storage.prefix },
        { namespace, name },
        s3Env(),
      );
      const runRoot = join(localRun, 'local', name);
      for (const file of readdirSync(runRoot, { recursive: true, withFileTypes: true }))
        if (file.isFile()) {
          const path = join(file.parentPath, file.name);
          await store.putFile(relative(runRoot, path), path);
        }

      const out = join(root, 'from-cluster');
      // No S3 keys in the environment: the command reads them from the run's Secret.
      const env = { ...process.env };
      delete env.SMOLSTAGE_S3_ACCESS_KEY;
      delete env.SMOLSTAGE_S3_SECRET_KEY;
      const result = await smolstage(
        [
          'report',
          '--run',
          name,
          '--namespace',
          namespace,
          '--kubeconfig',
          requireKube().kubeconfig,
          '--out',
          out,
        ],
        env,
      );
      assert.equal(result.code, 0, result.stderr);
      const local = join(localRun, 'report');
      const pngs = readdirSync(local)
        .filter((f) => f.endsWith('.png'))
        .sort();
      assert.ok(pngs.length >= 6);
      assert.deepEqual(
        readdirSync(out)
          .filter((f) => f.endsWith('.png'))
          .sort(),
        pngs,
      );
      for (const png of pngs)
        assert.ok(
          readFileSync(join(out, png)).equals(readFileSync(join(local, png))),
          `${png} is the same chart`,
        );
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      assert.ok(
        html.includes(`s3://${bucket}/${storage.prefix}/${namespace}/${name}/`),
        'names where the objects are',
      );
      assert.ok(!html.includes(requireS3().secretKey), 'no credentials in the report');

      const missing = await smolstage(
        ['report', '--run', 'nosuchrun', '--namespace', namespace, '--kubeconfig', requireKube().kubeconfig],
        env,
      );
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, new RegExp(`TrainingRun ${namespace}/nosuchrun does not exist`));
    } finally {
      await deleteNamespace(client, namespace);
    }
  });
});
