"""LeakBench's reports: the result table of a run, its files, comparisons and release gates.

Built from the `leakbench` records that the benchmark's tests attach to their reports
(leakbench.record_property), never from the probe data: the only text of the model's a record
holds was masked in the test (leakbench.outcomes), so no secret reaches a report unless the run
was asked for them (--show-secrets).

- `records`: reading the records off the reports (`Collected`, `Record`)
- `rows`: one row of numbers per (model, algorithm) (`build_rows`)
- `shifts`: leak state changes from the planted model, per probe (`leak_shifts`)
- `gates`: ``--gate`` conditions checked on the rows (`check`)
- `summary`: all of the above for one run (`summarize`)
- `formatting`, `render`: headers, cells and the text tables (terminal and Markdown)
- `manifest`, `chart`, `html`, `files`: results.json's manifest, the charts, results.html, the
  files written
- `compare`: ``python -m reports.compare A.json B.json``
"""
