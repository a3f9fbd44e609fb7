// Renders each action's inputs and outputs, read from its action.yml, as Markdown tables into
// its README.md, between the markers <!-- inputs --> <!-- /inputs --> and <!-- outputs -->
// <!-- /outputs -->, and into the top-level README.md between <!-- action-NAME:inputs -->
// <!-- /action-NAME:inputs --> (and :outputs) markers. With --check, changes nothing and fails when a README is out of date, so
// the documented contract is always the declared one.
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';

const check = process.argv.includes('--check');
const root = new URL('..', import.meta.url).pathname;
const cell = (text) =>
  String(text ?? '')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\|/g, '\\|');

export function inputsTable(action) {
  const rows = Object.entries(action.inputs ?? {}).map(([name, input]) => {
    const fallback =
      input.default === undefined || input.default === '' ? '' : `\`${cell(input.default)}\``;
    return `| \`${name}\` | ${input.required ? 'yes' : 'no'} | ${fallback} | ${cell(input.description)} |`;
  });
  return [
    '| Input | Required | Default | Description |',
    '| --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

export function outputsTable(action) {
  const rows = Object.entries(action.outputs ?? {}).map(
    ([name, output]) => `| \`${name}\` | ${cell(output.description)} |`,
  );
  return ['| Output | Description |', '| --- | --- |', ...rows].join('\n');
}

function replaceBetween(text, marker, body, file) {
  const pattern = new RegExp(`(<!-- ${marker} -->)[\\s\\S]*?(<!-- /${marker} -->)`);
  if (!pattern.test(text))
    throw new Error(`${file} lacks the <!-- ${marker} --> ... <!-- /${marker} --> markers`);
  // Prettier would pad the table cells; the generated block is kept exactly as rendered.
  const block = `<!-- prettier-ignore-start -->\n${body}\n<!-- prettier-ignore-end -->`;
  return text.replace(pattern, (_, open, close) => `${open}\n${block}\n${close}`);
}

/** Fills every table block of `file`; `prefix` tells the README's markers from an action's own. */
function render(file, action, prefix, stale) {
  const current = readFileSync(file, 'utf8');
  let next = replaceBetween(current, `${prefix}inputs`, inputsTable(action), file);
  next = replaceBetween(next, `${prefix}outputs`, outputsTable(action), file);
  if (next === current) return;
  if (check) stale.push(`${file} does not match its action.yml`);
  else writeFileSync(file, next);
}

const stale = [];
for (const dir of readdirSync(root)
  .filter((name) => name.startsWith('action-'))
  .sort()) {
  const readme = join(root, dir, 'README.md');
  if (!existsSync(readme)) {
    stale.push(`${dir}/README.md is missing`);
    continue;
  }
  const action = yaml.load(readFileSync(join(root, dir, 'action.yml'), 'utf8'));
  render(readme, action, '', stale);
  // The top-level README shows every action's tables too, under <!-- <dir>:inputs --> markers.
  render(join(root, 'README.md'), action, `${dir}:`, stale);
}
if (stale.length > 0) {
  for (const line of stale) console.error(line);
  console.error('Run `npm run docs` and commit the READMEs.');
  process.exit(1);
}
