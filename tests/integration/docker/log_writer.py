"""A writer that never stops: numbered lines to a file, reopening it on SIGUSR1 (as nginx does)."""

import signal
import sys
import time

path, stop_file = sys.argv[1], sys.argv[2]
reopen = False


def _usr1(*_: object) -> None:
    global reopen
    reopen = True


signal.signal(signal.SIGUSR1, _usr1)
handle = open(path, "a", buffering=1)
n = 0
while True:
    if reopen:
        reopen = False
        handle.close()
        handle = open(path, "a", buffering=1)
    n += 1
    handle.write(f"line {n} " + "x" * 100 + "\n")
    if n % 200 == 0:
        try:
            open(stop_file).close()
            break
        except FileNotFoundError:
            time.sleep(0.001)
handle.close()
print(n)
