// Builds every action's ncc bundle into dist/<action>/index.js, with dist/<action>/licenses.txt
// naming every npm package the bundle contains and its licence text (scripts/licenses.mjs).
// With --check, builds into a temporary directory and fails when dist/ differs from it, or when
// the committed licenses.txt misses a package the fresh bundle contains, so CI catches a src/
// change committed without its rebuilt bundle.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { bundledPackages, missingFromLicenses, renderLicenses } from './licenses.mjs';

// Every src/<action>/index.ts is an action entry point.
const ACTIONS = readdirSync('src').filter((name) => existsSync(join('src', name, 'index.ts')));
const check = process.argv.includes('--check');
const outRoot = check ? mkdtempSync(join(tmpdir(), 'bundle-')) : 'dist';
const statsDir = mkdtempSync(join(tmpdir(), 'bundle-stats-'));
const packagesOf = {};

// ncc type-checks the whole project, the dispatcher example's sources included: on a fresh
// clone its packages are installed first.
execFileSync('bash', ['scripts/dispatcher-deps.sh'], { stdio: 'inherit' });

for (const action of ACTIONS) {
  const stats = join(statsDir, `${action}.json`);
  // A fresh directory, so no chunk of an earlier build (such as the old `open` one) lingers.
  rmSync(join(outRoot, action), { recursive: true, force: true });
  execFileSync(
    'npx',
    [
      'ncc',
      'build',
      `src/${action}/index.ts`,
      '-o',
      join(outRoot, action),
      // @azure/identity imports `open` only to show a browser for interactive sign-in, which no
      // action does: left out, it is neither bundled nor shipped as a dead chunk.
      '--external',
      'open',
      '--stats-out',
      stats,
      '-q',
    ],
    { stdio: 'inherit' },
  );
  packagesOf[action] = bundledPackages(JSON.parse(readFileSync(stats, 'utf8')), resolve('.'));
  writeFileSync(join(outRoot, action, 'licenses.txt'), renderLicenses(packagesOf[action]));
}
rmSync(statsDir, { recursive: true, force: true });

if (check) {
  const differences = [];
  const walk = (root, dir = root) =>
    readdirSync(dir).flatMap((name) => {
      const full = join(dir, name);
      return statSync(full).isDirectory() ? walk(root, full) : [relative(root, full)];
    });
  const fresh = walk(outRoot);
  for (const file of fresh) {
    const committed = join('dist', file);
    if (!existsSync(committed)) differences.push(`missing: dist/${file}`);
    else if (!readFileSync(committed).equals(readFileSync(join(outRoot, file)))) {
      differences.push(`differs: dist/${file}`);
    }
  }
  for (const action of ACTIONS) {
    const file = join('dist', action, 'licenses.txt');
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    for (const pkg of missingFromLicenses(text, packagesOf[action])) {
      differences.push(`${file} does not list ${pkg}, which the bundle contains`);
    }
  }
  const stale = existsSync('dist') ? walk('dist').filter((file) => !fresh.includes(file)) : [];
  rmSync(outRoot, { recursive: true, force: true });
  if (differences.length > 0 || stale.length > 0) {
    console.error('dist/ does not match src/. Run `npm run bundle` and commit dist/.');
    for (const line of [...differences, ...stale.map((file) => `stale: dist/${file}`)])
      console.error(`  ${line}`);
    process.exit(1);
  }
  console.log(`dist/ is up to date (${fresh.length} files, licences complete).`);
}
