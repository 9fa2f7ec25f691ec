// Parse an AsyncAPI document with the official parser; exit 1 on any error diagnostic.
//   node validate.mjs ../../schemas/asyncapi.yaml
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import parserPkg from '@asyncapi/parser';

const { Parser, fromFile, DiagnosticSeverity } = parserPkg;
const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node validate.mjs <asyncapi.yaml>');
    return 2;
  }
  const path = resolve(file);
  if (!existsSync(path)) {
    console.error(`no such file: ${path}`);
    return 2;
  }
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, path).parse();
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  const shown = process.env.ASYNCAPI_CHECK_VERBOSE ? diagnostics : errors;
  for (const d of shown) {
    const where = d.path && d.path.length ? d.path.join('.') : '(document)';
    const line = d.range ? `:${d.range.start.line + 1}` : '';
    console.error(`${SEVERITY[d.severity] ?? d.severity} ${d.code} at ${where}${line}: ${d.message}`);
  }
  if (errors.length || !document) {
    console.error(`${path}: ${errors.length} error(s); the document is not valid AsyncAPI`);
    return 1;
  }
  const others = diagnostics.length - errors.length;
  console.log(`${path}: valid AsyncAPI ${document.version()} (${others} non-error diagnostic(s))`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(1);
  },
);
