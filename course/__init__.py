"""The teacher's and course-runner's tools; students never need them and the student version leaves them out.

* :mod:`course.student` -- ``python -m course.student OUT_DIR [A1 ...]``: the student version (solutions taken out);
* :mod:`course.grade` -- ``python -m course.grade [STUDENT_DIR] [A1 ...]``: grade answer files with this
  checkout's tests (``--audit``: does the blank version score 0?); :mod:`course.grade_plugin` is its pytest plugin;
* :mod:`course.run` -- ``python -m course.run [--fast] [PATTERN ...]`` (``make course``): run the notebooks
  headless and rebuild the README results table.

What students and the assignments use lives in :mod:`helpers` (configuration, datasets, training, plots,
and the environment report :mod:`helpers.environment_report` for bug reports).
"""
