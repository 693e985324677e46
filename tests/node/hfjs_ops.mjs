// Operations of @huggingface/hub (unmodified, from npm) for the Hub tests, shared by Node
// (hfjs_client.mjs) and headless Chromium (tests/browser/test_hub_browser.py).
//
// runOps(hub, {hubUrl, accessToken}, ops, io) runs each op in order and returns one result per
// op; a failing op gives {error, status, message} and the next ones still run. `io` supplies
// what differs between the runtimes: readBlob(name) -> Blob, sha256(ArrayBuffer) -> hex,
// and in Node sha256File(path) -> hex.
//
// Ops: {op: "createRepo", repo, repoType?, private?} -> repo URL
//      {op: "uploadFiles", repo, repoType?, files: [[source, pathInRepo]], branch?} -> commit oid
//      {op: "downloadFile", repo, repoType?, path, revision?} -> {sha256, size} | null
//      {op: "listFiles", repo, repoType?, revision?} -> [{path, type, size, xetHash, lfs}]
//      {op: "downloadFileToCacheDir", repo, repoType?, path, cacheDir} -> {sha256} (Node only)

export async function runOps(hub, { hubUrl, accessToken }, ops, io) {
  const results = [];
  for (const op of ops) {
    try {
      results.push(await runOne(hub, { hubUrl, accessToken }, op, io));
    } catch (e) {
      results.push({ error: e?.name ?? "Error", status: e?.statusCode ?? null,
                     message: String(e?.message ?? e).slice(0, 2000) });
    }
  }
  return results;
}

async function runOne(hub, credentials, op, io) {
  const common = { ...credentials, repo: { type: op.repoType ?? "model", name: op.repo } };
  switch (op.op) {
    case "createRepo":
      return (await hub.createRepo({ ...common, private: !!op.private })).repoUrl;
    case "uploadFiles": {
      const files = await Promise.all(
        op.files.map(async ([source, path]) => ({ path, content: await io.readBlob(source) })));
      const out = await hub.uploadFiles({ ...common, files, branch: op.branch });
      return out.commit.oid;
    }
    case "downloadFile": {
      const blob = await hub.downloadFile({ ...common, path: op.path, revision: op.revision });
      if (blob === null) return null;
      const buf = await blob.arrayBuffer();
      return { sha256: await io.sha256(buf), size: buf.byteLength };
    }
    case "listFiles": {
      const out = [];
      for await (const f of hub.listFiles({ ...common, recursive: true, revision: op.revision })) {
        out.push({ path: f.path, type: f.type, size: f.size, xetHash: f.xetHash ?? null,
                   lfs: f.lfs ?? null });
      }
      return out;
    }
    case "downloadFileToCacheDir": {
      const path = await hub.downloadFileToCacheDir({ ...common, path: op.path,
                                                      cacheDir: op.cacheDir });
      return { sha256: await io.sha256File(path) };
    }
    default:
      throw new Error(`unknown op ${op.op}`);
  }
}
