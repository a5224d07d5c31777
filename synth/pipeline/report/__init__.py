"""The pipeline run's ``report.html``: one self-contained page for a whole ``synth run``.

:func:`write_pipeline_report` reads what a run directory holds (``manifest.json``,
``estimate.json``, ``generate/<stage>/``, ``curate/``, ``student/``, ``eval/``) and writes
``RUN/report.html``. It opens on what its reader came for — the student against the
teacher (share of the teacher's task score kept, speed-up, size), the money spent and the
rows kept — then the stages run and skipped, the funnel (rows per step and reason, from the
teachers' answers to the student's train / held-out split), cost per teacher (estimated vs
spent), diversity of the curated responses (:mod:`synth.pipeline.diversity`) and the
textbook grid's coverage, acceptance per teacher, the training curves, the eval table and
a browser of sample kept and rejected rows.

Whatever a run lacks (a pipeline of generate stages only, a skipped training) is said in
words where its section would be; numbers are never invented.

The parts, each a function of the one before:

* :mod:`~synth.pipeline.report.rundir`: reading the run directory's files;
* :mod:`~synth.pipeline.report.figures`: :func:`collect_report`, the figures as plain data;
* :mod:`~synth.pipeline.report.plots`: the plots of those figures (the only matplotlib);
* :mod:`~synth.pipeline.report.page`: figures to text and tables, rendered through the
  autoescaped Jinja2 template ``page.html.j2`` with the row browser's ``rows.js``.
"""

from __future__ import annotations

from synth.pipeline.report.figures import SAMPLE_ROWS, Headline, ReportData, collect_report
from synth.pipeline.report.page import render_html, write_pipeline_report

__all__ = ["write_pipeline_report", "collect_report", "render_html", "Headline", "ReportData",
           "SAMPLE_ROWS"]
