"""Benchmark tool for sb3_natgrad: candidate algorithms against reference implementations.

Modules:

- :mod:`benchmarks.spec`: the data model (``Algo``, ``Budget``, ``Entry``, ``Suite``, ``RunSpec``) and run planning.
- :mod:`benchmarks.suites`: the table of comparisons (one ``Suite`` per algorithm family).
- :mod:`benchmarks.zoo`: rl-zoo3 YAML entries -> constructor keyword arguments and environments.
- :mod:`benchmarks.worker`: one training run (algorithm x env x seed) in its own process.
- :mod:`benchmarks.harness`: schedules the workers, appends results to the JSONL, resumes.
- :mod:`benchmarks.report`: markdown table and learning-curve plots from the JSONL.
- :mod:`benchmarks.overhead`: times ``train()`` alone on identical data.
- :mod:`benchmarks.stats`: interquartile mean over seeds with its bootstrap confidence interval.
- :mod:`benchmarks.status`: recorded runs that are stale, missing or historical against the suites.
- :mod:`benchmarks.micro`: micro-benchmarks of the math core, one module each.
- :mod:`benchmarks.__main__`: the command line (``python -m benchmarks --help``).
"""
