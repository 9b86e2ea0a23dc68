"""The course's library for students and assignments: everything a notebook or a solution module imports.

Configuration (:mod:`~helpers.config`), datasets (:mod:`~helpers.datasets`), shared input checks
(:mod:`~helpers.checks`), gradient checks (:mod:`~helpers.gradcheck`), training and checkpoints
(:mod:`~helpers.solver`, :mod:`~helpers.train`), plots (:mod:`~helpers.vis`), results
(:mod:`~helpers.results`), text (:mod:`~helpers.text`), image quality (:mod:`~helpers.quality`), export
(:mod:`~helpers.export`) and the environment report for bug reports (:mod:`~helpers.environment_report`).
It ships whole in the student version.  The teacher's tools (student version, grader, notebook runner)
live in the top-level package :mod:`course` instead, which the student version leaves out.
"""
