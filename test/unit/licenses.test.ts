import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/**
 * Calls a function of scripts/licenses.mjs (an ES module, which Jest's CommonJS runtime cannot
 * load) in a Node process of its own, with JSON arguments and result.
 */
function call<T>(name: string, ...args: unknown[]): T {
  const script =
    `import(${JSON.stringify(path.join(ROOT, 'scripts/licenses.mjs'))}).then((m) => ` +
    `process.stdout.write(JSON.stringify(m[${JSON.stringify(name)}](...JSON.parse(process.argv[1])))))`;
  const result = spawnSync(process.execPath, ['-e', script, JSON.stringify(args)], {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout) as T;
}
interface Package {
  name: string;
  version: string;
  license: string;
  dir: string;
}
const licenses = {
  bundledPackages: (stats: unknown, root: string) =>
    call<Package[]>('bundledPackages', stats, root),
  renderLicenses: (packages: Package[]) => call<string>('renderLicenses', packages),
  missingFromLicenses: (text: string, packages: Package[]) =>
    call<string[]>('missingFromLicenses', text, packages),
};

describe('bundle licences (scripts/licenses.mjs)', () => {
  // What ncc's --stats-out says of a bundle: module paths, some concatenated into others.
  const stats = {
    modules: [
      { name: './src/fetch-model/index.ts' },
      { name: './node_modules/yaml/dist/index.js' },
      {
        name: './node_modules/@actions/core/lib/core.js + 2 modules',
        modules: [
          { name: './node_modules/@actions/core/lib/core.js' },
          { name: './node_modules/@actions/http-client/lib/index.js' },
        ],
      },
      { name: 'external "node:fs"' },
    ],
  };

  it('names every package whose modules the bundle holds, concatenated ones included', () => {
    const packages = licenses.bundledPackages(stats, ROOT);
    expect(packages.map((p) => p.name)).toEqual(['@actions/core', '@actions/http-client', 'yaml']);
    expect(packages.every((p) => p.license === 'MIT' || p.license === 'ISC')).toBe(true);
  });

  it('writes each package with its licence text', () => {
    const text = licenses.renderLicenses(licenses.bundledPackages(stats, ROOT));
    expect(text).toMatch(/^={80}\n@actions\/core@[\d.]+\nLicense: MIT\n\n(The )?MIT License/m);
    expect(text).toMatch(/^={80}\nyaml@[\d.]+\nLicense: ISC\n\nCopyright Eemeli Aro/m);
  });

  it('catches a bundled package missing from licenses.txt', () => {
    const packages = licenses.bundledPackages(stats, ROOT);
    const complete = licenses.renderLicenses(packages);
    expect(licenses.missingFromLicenses(complete, packages)).toEqual([]);
    const withoutYaml = licenses.renderLicenses(packages.filter((p) => p.name !== 'yaml'));
    expect(licenses.missingFromLicenses(withoutYaml, packages)).toEqual([
      `yaml@${packages.find((p) => p.name === 'yaml')!.version}`,
    ]);
    // ncc's own --license output (a package name on a line of its own) does not count.
    expect(licenses.missingFromLicenses('open\nMIT\nMIT License\n', packages)).toHaveLength(3);
  });
});
