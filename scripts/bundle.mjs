// Builds every action's ncc bundle into dist/<action>/index.js.
// With --check, builds into a temporary directory and fails when dist/ differs from it, so CI
// catches a src/ change committed without its rebuilt bundle.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

// Every src/<action>/index.ts is an action entry point.
const ACTIONS = readdirSync('src').filter((name) => existsSync(join('src', name, 'index.ts')));
const check = process.argv.includes('--check');
const outRoot = check ? mkdtempSync(join(tmpdir(), 'bundle-')) : 'dist';

for (const action of ACTIONS) {
  execFileSync(
    'npx',
    [
      'ncc',
      'build',
      `src/${action}/index.ts`,
      '-o',
      join(outRoot, action),
      '--license',
      'licenses.txt',
      '-q',
    ],
    { stdio: 'inherit' },
  );
}

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
  const stale = existsSync('dist') ? walk('dist').filter((file) => !fresh.includes(file)) : [];
  rmSync(outRoot, { recursive: true, force: true });
  if (differences.length > 0 || stale.length > 0) {
    console.error('dist/ does not match src/. Run `npm run bundle` and commit dist/.');
    for (const line of [...differences, ...stale.map((file) => `stale: dist/${file}`)])
      console.error(`  ${line}`);
    process.exit(1);
  }
  console.log(`dist/ is up to date (${fresh.length} files).`);
}
