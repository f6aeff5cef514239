# worker.py is a program the tests start in subprocesses, not a test module.
collect_ignore = ["worker.py"]
