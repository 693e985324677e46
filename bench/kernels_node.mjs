// Pyodide-in-Node side of bench/kernels.py: load Pyodide from the offline distribution
// (web/pyodide), install our wheel, run bench/kernels_payload.py's run(**config) and print its
// JSON result as the last line of stdout.
// Usage: node bench/kernels_node.mjs <web/pyodide dir> '<config json>'
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { kernelOnly } from "./kernels_raw.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(process.argv[2] ?? path.join(here, "..", "web", "pyodide"));
const config = process.argv[3] ?? "{}";
const wheel = JSON.parse(readFileSync(path.join(dist, "xet_pyodide_wheel.json"), "utf8")).wheel;

const pyodide = await loadPyodide({
  indexURL: dist + "/",
  lockFileURL: path.join(dist, "pyodide-lock.json"),
  packages: ["micropip"],
  stdout: (s) => process.stderr.write(s + "\n"),
  stderr: (s) => process.stderr.write(s + "\n"),
});
pyodide.FS.mkdirTree("/tmp/wheels");
pyodide.FS.writeFile(`/tmp/wheels/${wheel}`, readFileSync(path.join(dist, wheel)));
pyodide.FS.mkdirTree("/tmp/bench");
pyodide.FS.writeFile("/tmp/bench/kernels_payload.py", readFileSync(path.join(here, "kernels_payload.py")));
pyodide.globals.set("bench_config", config);
const result = await pyodide.runPythonAsync(`
import json, sys, micropip
await micropip.install("emfs:/tmp/wheels/${wheel}")
sys.path.insert(0, "/tmp/bench")
import kernels_payload
json.dumps(await kernels_payload.run(**json.loads(bench_config)))
`);
const parsed = JSON.parse(result);
const wasm = pyodide.runPython(
  "from xet_pyodide.kernels._instance import read_wasm_bytes; read_wasm_bytes()").toJs();
parsed.kernel_only_gbps = await kernelOnly(wasm, parsed.size_mib, parsed.repeat ?? 3);
process.stdout.write(JSON.stringify(parsed) + "\n");
