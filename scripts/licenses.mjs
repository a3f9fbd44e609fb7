// The third-party licences of an ncc bundle: every npm package whose modules webpack put into
// the bundle (read from ncc's --stats-out), with the licence its package.json declares and the
// text of its LICENSE/LICENCE/COPYING file. bundle.mjs writes dist/<action>/licenses.txt with
// it, and `--check` fails when a bundled package is missing from the committed file.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const RULE = '='.repeat(80);
const HEADER = `Third-party software in this bundle, each package with its licence.\n`;

/** Every module path webpack's stats name, nested (concatenated) modules included. */
function modulePaths(stats) {
  const paths = [];
  const walk = (modules = []) => {
    for (const module of modules) {
      if (typeof module.name === 'string') paths.push(module.name);
      walk(module.modules);
    }
  };
  walk(stats.modules);
  for (const chunk of stats.chunks ?? []) walk(chunk.modules);
  return paths;
}

/**
 * The packages a bundle contains: for each module under node_modules, the innermost package
 * directory (so a nested copy of another version counts on its own), as name, version and
 * licence from its package.json. Sorted by name, then version.
 */
export function bundledPackages(stats, root) {
  const dirs = new Set();
  for (const path of modulePaths(stats)) {
    const match = /^(?:\.\/)?((?:.*\/)?node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(path);
    if (match) dirs.add(match[1]);
  }
  const packages = new Map();
  for (const dir of dirs) {
    const manifest = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
    const key = `${manifest.name}@${manifest.version}`;
    if (!packages.has(key)) {
      packages.set(key, {
        name: manifest.name,
        version: manifest.version,
        license: licenseId(manifest),
        dir: join(root, dir),
      });
    }
  }
  return [...packages.values()].sort(
    (a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version),
  );
}

function licenseId(manifest) {
  if (typeof manifest.license === 'string') return manifest.license;
  if (manifest.license?.type) return manifest.license.type;
  if (Array.isArray(manifest.licenses)) return manifest.licenses.map((l) => l.type).join(' OR ');
  return 'UNKNOWN';
}

/** The licence text a package ships (LICENSE, LICENCE, COPYING, with any extension). */
export function licenseText(dir) {
  const files = readdirSync(dir)
    .filter((name) => /^(licen[cs]e|copying)([.-].*)?$/i.test(name))
    .sort();
  if (files.length === 0) return undefined;
  return files.map((name) => readFileSync(join(dir, name), 'utf8').trim()).join('\n\n');
}

/** licenses.txt for `packages`: one block per package, its header `name@version`. */
export function renderLicenses(packages) {
  const blocks = packages.map((pkg) => {
    const shipped = licenseText(pkg.dir);
    if (shipped === undefined && pkg.license === 'UNKNOWN') {
      throw new Error(`${pkg.name}@${pkg.version} declares no licence and ships no licence file`);
    }
    const text =
      shipped ?? `(The package ships no licence file; its package.json declares ${pkg.license}.)`;
    return `${RULE}\n${pkg.name}@${pkg.version}\nLicense: ${pkg.license}\n\n${text}\n`;
  });
  return `${HEADER}\n${blocks.join('\n')}`;
}

/** The `name@version` of each package in `packages` that licenses.txt `text` does not list. */
export function missingFromLicenses(text, packages) {
  const listed = new Set(
    [...text.matchAll(new RegExp(`^${RULE}\\n(.+)\\nLicense: `, 'gm'))].map((match) => match[1]),
  );
  return packages.map((pkg) => `${pkg.name}@${pkg.version}`).filter((key) => !listed.has(key));
}
