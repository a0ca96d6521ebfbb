// Under the preload, through the TALLY_MARK_FD line protocol (Node has no C FFI of its own): a write
// window around allocating and filling a large Buffer. Run: node node_buffer.js BYTES
const fs = require("fs");
const n = Number(process.argv[2] || 100000000);
const fd = Number(process.env.TALLY_MARK_FD);
const marks = Number.isInteger(fd) && fd >= 0;
if (marks) fs.writeSync(fd, `begin write ${n}\n`);
const buf = Buffer.alloc(n, 7);
if (marks) fs.writeSync(fd, "end 0\n");
if (buf[n - 1] !== 7) process.exit(1);
console.log(`node_buffer: ${n} bytes, marks ${marks ? "on" : "off"}`);
