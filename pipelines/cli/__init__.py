"""The `vaepipe` command (top layer): one module per sub-command, each parsing its flags into the job's
config, running the job, writing the job's report and printing where things are. Nothing imports it."""
