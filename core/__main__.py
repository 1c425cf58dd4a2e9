# Signals are answered from here on, before the heavy imports below (torch takes seconds): one line, no traceback.
from .interrupts import ended_by_signal, install

install()
try:
    from .cli import run
except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM while importing
    ended_by_signal(e, starting=True)

run()
