// tally's adapter for zarrita (npm, zarrita 0.7.5 + @zarrita/storage 0.2.0, pinned by
// harness/impl/package-lock.json; scripts/deps installs them into harness/impl/node_modules).
//
//   node harness/impl/zarrita.mjs --probe | --cell CELL.json      (docs/impl-protocol.md)
//
// Runs the Zarr v3 cells: zarr.create(root(FileSystemStore(url)), {shape, chunkShape, dtype,
// codecs: [bytes little-endian, then blosc | zstd (the numcodecs npm package, wasm)], fillValue 0}),
// zarr.set(arr, null, {data, shape, stride}) / zarr.get(await zarr.open(loc, {kind: "array"})).
// The array is at the cell's url itself. Skips v2 (zarrita 0.7.5 creates v3 arrays only: zarr.create
// always writes zarr.json with zarr_format 3; it reads v2 but cannot write it).
//
// S3: @zarrita/storage 0.2.0 has no S3 store (FetchStore is HTTP GET only, unsigned; the others are
// FileSystemStore, ZipFileStore and ReferenceStore), and this adapter does not hand-write a SigV4
// client. Reads go through FetchStore at ENDPOINT/BUCKET/PREFIX/, the prefix made readable to anyone
// for the cell (a bucket policy statement granting s3:GetObject on PREFIX/*, which radosgw honours;
// taken out again after), the array written by tally's engine (the matrix's impls.zarrita.s3_fixture).
// Writes go through a store of this adapter's (PresignedPutStore: set(key) is one fetch PUT to a
// presigned URL; boto3 presigns one URL per key the array will hold, zarr.json and every chunk,
// before the window). The policy, the presigning and the clean-up are harness/impl/s3_boto3_store.py's
// command line (boto3), run outside the window. The result line's "label" names the store.
//
// Marks: through the preload's TALLY_MARK_FD ("begin write N", "end N": one write per line); unset:
// unmarked. The data file (.npy) is parsed here: magic, version, header dict (descr, fortran_order,
// shape), then the bytes; read before the window.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const IMPL = "zarrita";
const HERE = path.dirname(fileURLToPath(import.meta.url));

class Failure extends Error {}

// zarrita and its store, imported when a cell runs (so that --probe answers without them).
let zarr = null;
let FileSystemStore = null;
let FetchStore = null;
async function loadZarrita() {
  zarr = await import("zarrita");
  FileSystemStore = (await import("@zarrita/storage/fs")).default;
  FetchStore = (await import("@zarrita/storage/fetch")).default;
}

// ------------------------------------------------------------------------------------------- S3
const PYTHON = process.env.TALLY_PYTHON || "/usr/bin/python3";
const S3_HELPER = path.join(HERE, "s3_boto3_store.py");
const LABELS = { read: "zarrita + FetchStore (public-read prefix)", write: "zarrita + presigned-PUT store" };

// s3_boto3_store.py VERB URL ARGS... (boto3: the policy, presigned URLs, removal); its stdout.
function s3Helper(verb, url, args = []) {
  const r = spawnSync(PYTHON, [S3_HELPER, verb, url, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new Failure(`${PYTHON} ${S3_HELPER} ${verb}: ${r.error.message}`);
  if (r.status !== 0) throw new Failure((r.stderr || "").trim().split("\n").pop() || `${S3_HELPER} ${verb}: exit ${r.status}`);
  return r.stdout;
}

function splitS3(url) {
  const m = /^s3:\/\/([^/]+)\/(.+?)\/*$/.exec(url);
  if (!m) throw new Failure(`an s3 url must be s3://BUCKET/PREFIX, not ${JSON.stringify(url)}`);
  return { bucket: m[1], prefix: m[2] };
}

// The keys a whole-array write stores: zarr.json and every chunk (v3's default "c/i/j" keys).
function keysOf(cell) {
  const keys = ["zarr.json"];
  const grid = cell.shape.map((n, d) => Math.ceil(n / cell.chunks[d]));
  const idx = grid.map(() => 0);
  if (grid.some((n) => n === 0)) return keys;
  for (;;) {
    keys.push("c/" + idx.join("/"));
    let d = idx.length - 1;
    while (d >= 0 && ++idx[d] === grid[d]) idx[d--] = 0;
    if (d < 0) return keys;
  }
}

// A write-only store of presigned PUT URLs (one per key): zarrita's set() as an HTTP PUT through fetch.
class PresignedPutStore {
  constructor(urls) { this.urls = urls; }
  async get() { return undefined; } // a whole-array write reads nothing back
  async set(key, value) {
    const url = this.urls[key.replace(/^\//, "")];
    if (!url) throw new Failure(`PresignedPutStore: no presigned URL for the key ${key}`);
    const r = await fetch(url, { method: "PUT", body: value });
    if (r.status !== 200) throw new Failure(`PUT ${key}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
  }
}

function s3Root(cell) {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  if (!endpoint) throw new Failure("an s3 cell needs AWS_ENDPOINT_URL in the environment");
  const { bucket, prefix } = splitS3(cell.url);
  return `${endpoint.replace(/\/+$/, "")}/${bucket}/${prefix}/`;
}

function version() {
  const pkg = JSON.parse(fs.readFileSync(path.join(HERE, "node_modules", "zarrita", "package.json"), "utf8"));
  return pkg.version;
}

// ------------------------------------------------------------------------------------------- marks
function marks() {
  const env = process.env.TALLY_MARK_FD;
  if (env === undefined || env === "") return { present: false, send() {} };
  const fd = Number(env);
  if (!Number.isInteger(fd) || fd < 0) throw new Failure(`TALLY_MARK_FD is not a file descriptor: ${env}`);
  return {
    present: true,
    send(line) {
      const b = Buffer.from(line + "\n");
      const n = fs.writeSync(fd, b, 0, b.length);
      if (n !== b.length) throw new Failure(`TALLY_MARK_FD ${fd}: short write of "${line}"`);
    },
  };
}

// ------------------------------------------------------------------------------------------- .npy
const NPY_TYPES = {
  "<f4": ["float32", Float32Array], "<f8": ["float64", Float64Array],
  "<i1": ["int8", Int8Array], "|i1": ["int8", Int8Array], "<u1": ["uint8", Uint8Array], "|u1": ["uint8", Uint8Array],
  "<i2": ["int16", Int16Array], "<u2": ["uint16", Uint16Array], "<i4": ["int32", Int32Array],
  "<u4": ["uint32", Uint32Array], "<i8": ["int64", BigInt64Array], "<u8": ["uint64", BigUint64Array],
};

function readNpy(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    if (e.code === "ENOENT") throw new Failure(`the data file ${file} does not exist`);
    throw new Failure(`cannot read the data file ${file}: ${e.message}`);
  }
  const bad = (why) => new Failure(`the data file ${file} is not a .npy file: ${why}`);
  if (buf.length < 10 || buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw bad("no \\x93NUMPY magic");
  const major = buf[6];
  let hlen, start;
  if (major === 1) { hlen = buf.readUInt16LE(8); start = 10; }
  else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad("truncated header");
    hlen = buf.readUInt32LE(8); start = 12;
  } else throw bad(`format version ${major}`);
  if (start + hlen > buf.length) throw bad("truncated header");
  const header = buf.toString(major === 3 ? "utf8" : "latin1", start, start + hlen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw bad(`header ${JSON.stringify(header.trim())}`);
  if (fortran[1] === "True") throw new Failure(`the data file ${file} is in Fortran order`);
  const dims = shape[1].split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  const offset = start + hlen;
  return { descr: descr[1], shape: dims, bytes: buf.subarray(offset) };
}

function typed(descr, bytes) {
  const t = NPY_TYPES[descr];
  // A view when the offset allows one; the .npy header pads the data to 64 bytes, so it does.
  if (bytes.byteOffset % t[1].BYTES_PER_ELEMENT === 0) {
    return new t[1](bytes.buffer, bytes.byteOffset, bytes.byteLength / t[1].BYTES_PER_ELEMENT);
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new t[1](copy.buffer, 0, bytes.byteLength / t[1].BYTES_PER_ELEMENT);
}

function loadData(cell) {
  const npy = readNpy(cell.data_path);
  if (npy.descr !== cell.dtype || JSON.stringify(npy.shape) !== JSON.stringify(cell.shape)) {
    throw new Failure(`the data file ${cell.data_path} holds ${npy.descr} ${JSON.stringify(npy.shape)}, ` +
      `the cell says ${cell.dtype} ${JSON.stringify(cell.shape)}`);
  }
  const n = cell.shape.reduce((a, b) => a * b, 1);
  if (npy.bytes.byteLength !== n * NPY_TYPES[npy.descr][1].BYTES_PER_ELEMENT) {
    throw new Failure(`the data file ${cell.data_path} holds ${npy.bytes.byteLength} bytes of data, ` +
      `not the ${n * NPY_TYPES[npy.descr][1].BYTES_PER_ELEMENT} of ${JSON.stringify(cell.shape)}`);
  }
  return typed(npy.descr, npy.bytes);
}

// ------------------------------------------------------------------------------------------- cells
const AXES = { op: ["write", "read"], store: ["local", "s3"], format: ["v2", "v3"] };
// The codecs this adapter configures, with numcodecs' defaults. The names a cell may hold are tally's
// registry's (the cell's "codecs", written by tally run); one of them not here is skipped, not refused.
const CODEC_DEFAULTS = { blosc: { cname: "lz4", clevel: 5, shuffle: 1, blocksize: 0 }, zstd: { level: 3, checksum: false }, none: {} };
const REQUIRED = ["scenario", "op", "store", "format", "codec", "dtype", "shape", "chunks", "data_path", "url"];

function loadCell(file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Failure(`cannot read the cell file ${file}: ${e.message}`);
  }
  let cell;
  try {
    cell = JSON.parse(text);
  } catch (e) {
    throw new Failure(`the cell file ${file} is not JSON: ${e.message}`);
  }
  if (cell === null || typeof cell !== "object" || Array.isArray(cell)) throw new Failure(`the cell file ${file} is not a JSON object`);
  const missing = REQUIRED.filter((k) => !(k in cell));
  if (missing.length) throw new Failure(`the cell file ${file} lacks ${missing.join(", ")}`);
  const names = cell.codecs ?? Object.keys(CODEC_DEFAULTS);
  if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) {
    throw new Failure(`the cell file ${file}: codecs ${JSON.stringify(names)} is not a list of names`);
  }
  for (const [k, allowed] of [...Object.entries(AXES), ["codec", names]]) {
    if (!allowed.includes(cell[k])) throw new Failure(`the cell file ${file}: ${k} is ${JSON.stringify(cell[k])}, not one of ${allowed.join(", ")}`);
  }
  const ints = (a, min) => Array.isArray(a) && a.length > 0 && a.every((n) => Number.isInteger(n) && n >= min);
  if (!ints(cell.shape, 0) || !ints(cell.chunks, 1) || cell.shape.length !== cell.chunks.length) {
    throw new Failure(`the cell file ${file}: shape ${JSON.stringify(cell.shape)} and chunks ${JSON.stringify(cell.chunks)} ` +
      "must be lists of integers of the same length (chunks > 0)");
  }
  const cc = cell.codec_config ?? { id: cell.codec };
  if (cc === null || typeof cc !== "object" || cc.id !== cell.codec) {
    throw new Failure(`the cell file ${file}: codec_config ${JSON.stringify(cc)} does not match codec ${JSON.stringify(cell.codec)}`);
  }
  cell.codec_config = { ...(CODEC_DEFAULTS[cell.codec] ?? {}), ...cc };
  cell.verify = cell.verify ?? true;
  if (cell.store === "local" && (typeof cell.url !== "string" || !path.isAbsolute(cell.url))) {
    throw new Failure(`the cell file ${file}: a local url must be an absolute path, not ${JSON.stringify(cell.url)}`);
  }
  return cell;
}

function skip(cell) {
  if (!(cell.codec in CODEC_DEFAULTS)) return `the zarrita adapter does not configure ${cell.codec} chunks`;
  if (cell.region) return "the zarrita adapter reads whole arrays only (a region cell)";
  if (cell.inner_chunks && cell.op === "write") {
    return "zarrita 0.7.5 reads sharded arrays but cannot write them (zarr.create has no sharding_indexed encoder)";
  }
  if (cell.inner_chunks && cell.index_location === "start") {
    return "zarrita 0.7.5 reads a shard's index from the end only (it ignores index_location \"start\")";
  }
  if (cell.inner_chunks && !cell.fixture) {
    return "a sharded read needs a fixture the harness writes (sharded_fixture in the matrix's impls.zarrita)";
  }
  if (cell.format === "v2") {
    return "zarrita 0.7.5 creates Zarr v3 arrays only (zarr.create always writes zarr.json with zarr_format 3; v2 it reads but cannot write)";
  }
  if (cell.store === "s3" && cell.op === "read" && !cell.fixture) {
    return "an S3 read needs a fixture the harness writes (s3_fixture in the matrix's impls.zarrita): zarrita writes S3 only through presigned URLs";
  }
  if (!(cell.dtype in NPY_TYPES)) return `the adapter handles little-endian numeric dtypes, not ${cell.dtype}`;
  if (cell.codec === "blosc" && ![0, 1, 2].includes(Number(cell.codec_config.shuffle))) {
    return `blosc shuffle ${cell.codec_config.shuffle} is not 0, 1 or 2`;
  }
  return null;
}

function codecs(cell) {
  const cc = cell.codec_config;
  const list = [{ name: "bytes", configuration: { endian: "little" } }];
  if (cell.codec === "blosc") {
    list.push({ name: "blosc", configuration: {
      cname: cc.cname, clevel: Number(cc.clevel), shuffle: ["noshuffle", "shuffle", "bitshuffle"][Number(cc.shuffle)],
      typesize: NPY_TYPES[cell.dtype][1].BYTES_PER_ELEMENT, blocksize: Number(cc.blocksize) } });
  } else if (cell.codec === "zstd") {
    list.push({ name: "zstd", configuration: { level: Number(cc.level), checksum: Boolean(cc.checksum) } });
  }
  return list;
}

function stridesOf(shape) {
  const s = new Array(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) { s[d] = acc; acc *= shape[d]; }
  return s;
}

async function write(cell, data) {
  const store = cell.store === "s3" ? new PresignedPutStore(cell._presigned) : new FileSystemStore(cell.url);
  const root = zarr.root(store);
  const arr = await zarr.create(root, {
    shape: cell.shape, chunkShape: cell.chunks, dtype: NPY_TYPES[cell.dtype][0], codecs: codecs(cell), fillValue: 0,
  });
  await zarr.set(arr, null, { data, shape: cell.shape, stride: stridesOf(cell.shape) });
}

async function read(cell) {
  // radosgw answers an anonymous GET of a missing key 403 (also with s3:ListBucket granted on the prefix),
  // and FetchStore takes only 404 as missing: on S3, open.v3 (the cell's format) asks for zarr.json alone,
  // where open would try v2's .zattrs first. Every chunk of the arrays here exists.
  const arr = cell.store === "s3" ? await zarr.open.v3(zarr.root(new FetchStore(s3Root(cell))), { kind: "array" })
    : await zarr.open(zarr.root(new FileSystemStore(cell.url)), { kind: "array" });
  const chunk = await zarr.get(arr);
  if (JSON.stringify(chunk.shape) !== JSON.stringify(cell.shape)) {
    throw new Failure(`read ${JSON.stringify(chunk.shape)} from ${cell.url}, the cell says ${JSON.stringify(cell.shape)}`);
  }
  return chunk.data;
}

function bytesOf(a) {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function compare(cell, out, data) {
  if (out.constructor !== data.constructor || out.length !== data.length) {
    throw new Failure(`verify: read back ${out.constructor.name}[${out.length}], the data is ${data.constructor.name}[${data.length}]`);
  }
  if (Buffer.compare(bytesOf(out), bytesOf(data)) !== 0) {
    let n = 0;
    for (let i = 0; i < out.length; i++) if (!Object.is(out[i], data[i]) && out[i] !== data[i]) n++;
    throw new Failure(`verify: ${n} of ${data.length} elements read back from ${cell.url} differ from ${cell.data_path}`);
  }
}

// A collection before the window, as the Python adapters do.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc");

async function stage(what, fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Failure) throw e;
    throw new Failure(`${what}: ${e && e.name ? e.name : "Error"}: ${e && e.message ? e.message : String(e)}`);
  }
}

async function runCell(cell, m) {
  let data = await stage("loading the data", () => loadData(cell));
  const arrayBytes = data.byteLength;
  if (cell.store === "s3" && cell.op === "write") {
    // presigned before the window: the write's PUTs; the read back to verify goes through FetchStore
    cell._presigned = await stage("presigning the PUTs", () => JSON.parse(s3Helper("presign-put", cell.url, keysOf(cell))));
  }
  if (cell.store === "s3") await stage("granting anonymous GetObject on the prefix", () => s3Helper("grant-read", cell.url));
  if (cell.op === "read" && !cell.fixture) {
    await stage(`writing the read fixture to ${cell.url}`, () => write(cell, data));
    data = null;
  }
  gc();
  let out = null;
  m.send(`begin ${cell.op} ${arrayBytes}`);
  const t0 = performance.now();
  try {
    if (cell.op === "write") await stage(`writing ${cell.url}`, () => write(cell, data));
    else out = await stage(`reading ${cell.url}`, () => read(cell));
  } finally {
    const wall = (performance.now() - t0) / 1000;
    m.send(`end ${out ? out.byteLength : 0}`);
    cell._wall = wall;
  }
  let verified = false;
  if (cell.verify) {
    if (cell.op === "write") out = await stage(`reading ${cell.url} back to verify`, () => read(cell));
    else data = await stage("loading the data", () => loadData(cell));
    compare(cell, out, data);
    verified = true;
  }
  const extra = { window_wall_s: Math.round(cell._wall * 1e6) / 1e6, marked: m.present };
  if (cell.store === "s3") {
    extra.store = cell.op === "read" ? { name: "@zarrita/storage FetchStore", url: s3Root(cell).replace(/\/\/[^/]*@/, "//") }
      : { name: "PresignedPutStore (harness/impl/zarrita.mjs): fetch PUT to URLs presigned by boto3", keys: keysOf(cell).length };
  }
  return { extra, verified };
}

function scrub(text) {
  for (const v of ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]) {
    const s = process.env[v];
    if (s && s.length >= 4) text = text.split(s).join("***");
  }
  return text;
}

function emit(line) {
  process.stdout.write(scrub(JSON.stringify(line)) + "\n");
  if (line.status === "failed") process.stderr.write(scrub(`${IMPL}: ${line.scenario ?? "?"}: failed: ${line.reason}`) + "\n");
  return line.status === "failed" ? 1 : 0;
}

async function probe() {
  try {
    const v = version();
    await loadZarrita();
    return { impl: IMPL, available: true, version: v };
  } catch (e) {
    return { impl: IMPL, available: false, reason: `zarrita is not installed in ${path.join(HERE, "node_modules")} (scripts/deps runs npm ci there): ${e.message}` };
  }
}

// --skip FILE: the skipped line --cell would print, or status "run" (the harness asks before it writes
// a fixture the adapter may not read).
async function skipLine(file) {
  const line = { impl: IMPL, scenario: null, status: "run" };
  try {
    const cell = loadCell(file);
    line.scenario = cell.scenario;
    const p = await probe();
    const why = p.available ? skip(cell) : `${IMPL} is unavailable here: ${p.reason}`;
    if (why) Object.assign(line, { status: "skipped", reason: why });
  } catch (e) {
    line.reason = e.message; // --cell says it again, as a failure
  }
  return emit(line);
}

async function main(argv) {
  if (argv.length === 1 && argv[0] === "--probe") return emit(await probe());
  if (argv.length === 2 && argv[0] === "--skip") return skipLine(argv[1]);
  if (argv.length !== 2 || argv[0] !== "--cell") {
    process.stderr.write("usage: zarrita.mjs --probe | --skip FILE | --cell FILE\n");
    return 2;
  }
  const line = { impl: IMPL, impl_version: null, scenario: null, status: "failed", reason: null, verified: false, extra: {} };
  let cell = null;
  let claimed = false;
  try {
    cell = loadCell(argv[1]);
    line.scenario = cell.scenario;
    const p = await probe();
    if (!p.available) {
      Object.assign(line, { status: "skipped", reason: `${IMPL} is unavailable here: ${p.reason}` });
      return emit(line);
    }
    line.impl_version = p.version;
    if (cell.store === "s3") line.label = LABELS[cell.op];
    const why = skip(cell);
    if (why) {
      Object.assign(line, { status: "skipped", reason: why });
      return emit(line);
    }
    if (!fs.existsSync(cell.data_path)) throw new Failure(`the data file ${cell.data_path} does not exist`);
    if (cell.store === "local") {
      let exists = true;
      try { fs.lstatSync(cell.url); } catch { exists = false; }
      if (exists !== Boolean(cell.fixture)) {
        throw new Failure(cell.fixture ? `${cell.url}: the fixture the harness wrote is not there`
          : `${cell.url} already exists (the url must be a directory that does not exist yet)`);
      }
      if (!fs.existsSync(path.dirname(cell.url))) throw new Failure(`the parent directory of ${cell.url} does not exist`);
    }
    claimed = true; // on S3, a fixture the harness wrote is the adapter's to remove too
    const r = await runCell(cell, marks());
    Object.assign(line, { status: "ok", extra: r.extra, verified: r.verified });
    delete line.reason;
  } catch (e) {
    line.status = "failed";
    line.reason = e instanceof Failure ? e.message : `${e && e.name ? e.name : "Error"}: ${e && e.message ? e.message : String(e)}`;
  } finally {
    if (claimed) {
      try {
        if (cell.store === "s3") {
          s3Helper("revoke-read", cell.url);
          s3Helper("remove", cell.url);
        } else fs.rmSync(cell.url, { recursive: true, force: true });
      } catch (e) {
        const why = `cleanup of ${cell.url}: ${e.message}`;
        line.status = "failed";
        line.reason = line.reason ? `${line.reason}; ${why}` : why;
      }
    }
  }
  return emit(line);
}

process.exitCode = await main(process.argv.slice(2));
