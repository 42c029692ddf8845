"""The platform under the flow declarations: the Ray engine, storage, passes over shards,
the commit, and the builder that turns a declaration into a Prefect flow."""
