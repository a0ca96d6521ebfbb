// The Zarr v3 interop partner: zarrita (npm) reads and writes arrays for tests/interop/interop.py.
//   node zarrita_io.mjs read DIR OUT.bin        -> raw C-order bytes of the array; prints {shape, data_type}
//                                                  (sharded arrays too; "start" indexes through the shim below)
//   node zarrita_io.mjs write DIR IN.bin SPEC   -> creates a v3 array from SPEC (JSON) and writes IN.bin into it
//   node zarrita_io.mjs serve                   -> one request per stdin line, a JSON list of the arguments
//                                                  above; one reply line each: {"ok": true} or {"ok": false,
//                                                  "error": "..."} (one process for a whole test: node's start
//                                                  is most of a small case's time)
import * as zarr from "zarrita";
import FileSystemStore from "@zarrita/storage/fs";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ctors = {
  bool: Uint8Array, int8: Int8Array, int16: Int16Array, int32: Int32Array, int64: BigInt64Array,
  uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, uint64: BigUint64Array,
  float32: Float32Array, float64: Float64Array,
};

function stridesOf(shape) {
  const s = new Array(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) { s[d] = acc; acc *= shape[d]; }
  return s;
}

// zarrita 0.7.5 reads every shard's index as a suffix of the object (codecs/sharding.js), whatever
// index_location says. For an array whose index_location is "start" this store answers that suffix
// request with the object's first bytes instead; the offsets in the index are from the object's
// start either way, so the rest of zarrita's read is its own. (Its crc32c codec strips the 4 bytes
// and checks nothing: zarrita proves layouts and values, not checksums.)
class IndexAtStartStore extends FileSystemStore {
  async getRange(key, range, opts) {
    if ("suffixLength" in range) range = { offset: 0, length: range.suffixLength };
    return super.getRange(key, range, opts);
  }
}

function storeFor(dir) {
  let meta = {};
  try { meta = JSON.parse(readFileSync(join(dir, "zarr.json"), "utf8")); } catch { /* zarrita says why */ }
  const shard = (meta.codecs ?? []).find((c) => c?.name === "sharding_indexed");
  return shard?.configuration?.index_location === "start" ? new IndexAtStartStore(dir) : new FileSystemStore(dir);
}

async function read(dir, out, report) {
  const arr = await zarr.open(storeFor(dir), { kind: "array" });
  const chunk = await zarr.get(arr);
  const data = chunk.data;
  // Typed arrays and zarrita's BoolArray both expose buffer, byteOffset and byteLength.
  writeFileSync(out, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  report({ shape: arr.shape, data_type: arr.dtype });
}

async function write(dir, input, specText) {
  const spec = JSON.parse(specText);
  const buf = readFileSync(input);
  const Ctor = ctors[spec.data_type];
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  const data = new Ctor(copy.buffer, 0, buf.byteLength / Ctor.BYTES_PER_ELEMENT);
  const root = zarr.root(new FileSystemStore(dir));
  const arr = await zarr.create(root, {
    shape: spec.shape, chunkShape: spec.chunks, dtype: spec.data_type,
    codecs: spec.codecs, fillValue: spec.fill_value ?? 0,
  });
  const value = spec.data_type === "bool" ? new zarr.BoolArray(copy.buffer) : data;
  await zarr.set(arr, null, { data: value, shape: spec.shape, stride: stridesOf(spec.shape) });
}

async function serve() {
  const { createInterface } = await import("node:readline");
  const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    try {
      const [mode, dir, file, spec] = JSON.parse(line);
      if (mode === "read") await read(dir, file, () => {});
      else if (mode === "write") await write(dir, file, spec);
      else throw new Error(`unknown request ${mode}`);
      say({ ok: true });
    } catch (e) {
      say({ ok: false, error: String(e && e.stack ? e.stack : e) });
    }
  }
}

const [mode, dir, file, spec] = process.argv.slice(2);
if (mode === "read") await read(dir, file, (o) => console.log(JSON.stringify(o)));
else if (mode === "write") await write(dir, file, spec);
else if (mode === "serve") await serve();
else { console.error("usage: zarrita_io.mjs read DIR OUT.bin | write DIR IN.bin SPEC | serve"); process.exit(2); }
