"""Sluice's benchmark harness: ``python -m bench`` (``make bench``).

One module per benchmark family (``wasm_module``, ``wasm_python``, ``docker_steps``,
``gvisor_steps``, ``memory``), each with ``FAMILY``, ``rows()`` (the rows it reports)
and ``async run(settings) -> list[Row]``; :mod:`bench.measure` holds the timing loops,
:mod:`bench.report` the table and JSON, :mod:`bench.machine` the machine description.
What each row measures, and against what: ``docs/benchmarks.md``.
"""
