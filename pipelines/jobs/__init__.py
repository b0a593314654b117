"""The verbs, one module each: prepare, train, tune, promote, score, generate, embed, nightly, submit.
Each takes its pydantic config and returns an outcome; the CLI prints it and writes the report."""
