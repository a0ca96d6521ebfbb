"""Nested windows: the outer window's peak lies inside the inner one (big_inner's 50 MB, freed before
small_after's 20 MB): the outer window carries the stacks at that peak, as it carries the libraries'."""
import os
fd = int(os.environ["TALLY_MARK_FD"])
def mark(s): os.write(fd, (s + "\n").encode())
def big_inner():
    return bytearray(50_000_000)  # LINE big_inner
def small_after():
    return bytearray(20_000_000)
mark("begin outer write 0")
mark("begin inner write 0")
a = big_inner()
del a
mark("end inner 0")
b = small_after()
mark("end outer 0")
