"""The pipeline around the science: profiles (sizes), stages and cells, artifacts, the runner and its worker, the
Dask connection, the CLI and the book's assembly. Nothing in the science modules imports it, except that a stage
notebook opens its cell with :func:`~rewinterp_utils.pipeline.session.open_stage`."""
