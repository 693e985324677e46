// Pyodide-in-Node host for the test harness (tests/plugins/runtimes.py).
//
// Loads Pyodide from the offline distribution in web/pyodide (lock file passed as a filesystem
// path: an http URL crashes Node), installs our wheel with micropip, then serves requests as
// JSON lines on stdin/stdout:  {"id": n, "code": "<python>"}  ->  {"id": n, "ok": true,
// "result": <string>} or {"id": n, "ok": false, "error": "<traceback>"}.
// The Python code's value (runPythonAsync) must be a string; the harness sends code that ends
// in a json.dumps(...) expression. Python's own stdout/stderr go to this process's stderr so
// they never mix with the protocol on stdout.
import { loadPyodide } from "../../node_modules/pyodide/pyodide.mjs";
import { readFileSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";

const dist = path.resolve(process.argv[2] ?? "web/pyodide");
const wheelName = JSON.parse(readFileSync(path.join(dist, "xet_pyodide_wheel.json"), "utf8")).wheel;

const pyodide = await loadPyodide({
  indexURL: dist + "/",
  lockFileURL: path.join(dist, "pyodide-lock.json"),
  packages: ["micropip"],
  stdout: (s) => process.stderr.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});
// micropip reads "emfs:" URLs from Pyodide's own file system: stage the wheel there.
pyodide.FS.mkdirTree("/tmp/wheels");
pyodide.FS.writeFile(`/tmp/wheels/${wheelName}`, readFileSync(path.join(dist, wheelName)));
await pyodide.runPythonAsync(`
import micropip
await micropip.install("emfs:/tmp/wheels/${wheelName}")
`);
globalThis.pyodide = pyodide;
process.stdout.write(JSON.stringify({ ready: true, python: pyodide.runPython("import sys; sys.version") }) + "\n");

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on("line", (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line);
  // One request at a time: tests are sequential and Pyodide has a single interpreter.
  queue = queue.then(async () => {
    let reply;
    try {
      const result = await pyodide.runPythonAsync(req.code);
      reply = { id: req.id, ok: true, result: String(result) };
    } catch (err) {
      reply = { id: req.id, ok: false, error: String(err && err.message ? err.message : err) };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
});
rl.on("close", () => queue.then(() => process.exit(0)));
