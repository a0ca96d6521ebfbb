"""300 functions, each compiled, called once (its 100 kB block kept) and freed: the next one's code
object, file name and function name come back at the freed ones' addresses. Each block's site must still
name its own function (gen17.py:2 f17 for the block of 100_000 + 17 bytes)."""
keep = []
for i in range(300):
    ns = {}
    exec(compile(f"def f{i}():\n    return bytearray(100_000 + {i})\n", f"gen{i}.py", "exec"), ns)
    keep.append(ns[f"f{i}"]())
    del ns
