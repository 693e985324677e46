// @huggingface/hub in Node for the Hub tests: reads {hubUrl, accessToken, ops} as JSON on
// stdin, runs the ops (hfjs_ops.mjs; sources are file paths) and prints the results as JSON.
import * as hub from "../../node_modules/@huggingface/hub/dist/index.mjs";
import { createHash } from "node:crypto";
import { openAsBlob, readFileSync } from "node:fs";
import { runOps } from "./hfjs_ops.mjs";

// stdout carries only the results (downloadFileToCacheDir logs with console.debug)
console.log = console.info = console.debug = (...args) => console.error(...args);
const spec = JSON.parse(readFileSync(0, "utf8"));
const sha256 = (buf) => createHash("sha256").update(Buffer.from(buf)).digest("hex");
const io = {
  readBlob: (path) => openAsBlob(path),
  sha256: async (buf) => sha256(buf),
  sha256File: async (path) => sha256(readFileSync(path)),
};
const results = await runOps(hub, spec, spec.ops, io);
process.stdout.write(JSON.stringify(results));
